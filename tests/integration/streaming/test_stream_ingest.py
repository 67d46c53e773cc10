"""Ingestion into real Redis and DuckDB: upserted corrections, harmless replays, and waiting out a held lock."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import duckdb
import pytest
from stream_harness import Workers, wait_status

from events.producer import EventProducer
from features.definitions.catalog import get_group
from features.offline_access import offline_session
from features.online.redis_store import RedisOnlineStore
from riskpipe.settings import Settings
from streaming.ingest import FeatureSinks
from streaming.status import read_status
from streaming.topology import ensure_topics, update_topic
from streaming.updates import FeatureUpdate, encode_updates

pytestmark = pytest.mark.integration

GROUP = get_group("device_sharing")
NOW = datetime.now(UTC).replace(tzinfo=None, microsecond=0)


def _us(dt: datetime) -> int:
    return int(dt.replace(tzinfo=UTC).timestamp() * 1_000_000)


def _update(key: str, minutes_ago: int, accounts: int, correction: bool = False) -> FeatureUpdate:
    features = {"device_distinct_accounts_1h": accounts, "device_distinct_accounts_24h": accounts,
                "device_distinct_accounts_7d": accounts, "device_distinct_accounts_30d": accounts,
                "device_failed_login_count_1h": 0, "device_failed_login_count_24h": 1, "device_distinct_ips_24h": 2}
    return FeatureUpdate(GROUP.name, GROUP.version, "device_id", key, _us(NOW - timedelta(minutes=minutes_ago)),
                         features, correction)


def _offline(settings: Settings) -> list[tuple[str, datetime, int]]:
    with offline_session(settings) as store:
        rows = store.query(f"SELECT device_id, event_time, device_distinct_accounts_1h FROM {GROUP.table_name} "
                           "ORDER BY device_id, event_time").to_pylist()
    return [(r["device_id"], r["event_time"], r["device_distinct_accounts_1h"]) for r in rows]


def test_corrections_replace_rows_and_replays_change_nothing(stream_settings: Settings) -> None:
    sinks = FeatureSinks(stream_settings, [GROUP], RedisOnlineStore.from_settings(stream_settings))
    first = [_update("d1", 10, 1), _update("d1", 5, 2), _update("d2", 5, 7)]
    sinks.write(first)
    fix = [_update("d1", 10, 3, correction=True), _update("d1", 5, 4, correction=True)]
    sinks.write(fix)
    for batch in (first, fix, first + fix):  # at-least-once: any prefix of the topic may come again
        sinks.write(batch)
    assert _offline(stream_settings) == [("d1", NOW - timedelta(minutes=10), 3), ("d1", NOW - timedelta(minutes=5), 4),
                                         ("d2", NOW - timedelta(minutes=5), 7)]
    online = RedisOnlineStore.from_settings(stream_settings).read_many([{"device_id": "d1"}, {"device_id": "d2"}],
                                                                       [GROUP])
    assert [v[GROUP.name].values["device_distinct_accounts_1h"] for v in online] == [4, 7]


def test_a_held_duckdb_lock_delays_but_loses_nothing(stream_settings: Settings, workers: Workers) -> None:
    settings = stream_settings.model_copy(update={"stream_groups": GROUP.name})
    workers.settings = settings
    topic = update_topic(settings, GROUP.name)
    ensure_topics(settings, [topic])
    updates = [_update(f"dev{i % 7}", i, i) for i in range(1, 60)]
    with EventProducer(settings.bootstrap_servers) as producer:
        for u in updates:
            producer.produce_raw(topic, encode_updates([u]), key=u.entity_key.encode())
        producer.produce_raw(topic, b"not an update", key=b"dev0")  # poison: dead-lettered, not retried forever

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    holder = duckdb.connect(str(settings.duckdb_path))  # another writer holds the file
    try:
        workers.start("ingest")
        status = wait_status(settings, "stream-ingest", lambda s: s["state"] == "retrying", 60, workers)
        assert "store write failed" in status["detail"]
        time.sleep(1.0)
    finally:
        holder.close()
    done = wait_status(settings, "stream-ingest", lambda s: s["counters"].get("offline", 0) == len(updates), 60,
                       workers)
    assert done["counters"]["rejected"] == 1
    workers.stop("ingest")
    assert len(_offline(settings)) == len(updates)
    assert read_status(settings, "stream-ingest")["state"] == "stopped"

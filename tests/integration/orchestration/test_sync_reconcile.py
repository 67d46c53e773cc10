"""Sync on real DuckDB + Redis: repair offline from online, mismatch metrics, materialize, sync_runs."""

from __future__ import annotations

from datetime import datetime, timedelta

import pyarrow as pa
import pytest

from features.batch.engine import compute_group
from features.definitions.catalog import get_group
from features.materialize import run_batch_group, tick_bounds
from features.offline import DuckDBOfflineStore
from features.online.redis_store import RedisOnlineStore
from features.sync import SYNC_RUNS_TABLE, alert_messages, sync_group

pytestmark = pytest.mark.integration

SECURITY = get_group("account_security_changes")  # a stream group: ingestion writes online and offline


def _rows(values: list[tuple[str, object, int]]) -> pa.Table:
    return pa.table({
        "account_id": [v[0] for v in values],
        "event_time": pa.array([v[1] for v in values], pa.timestamp("us")),
        "security_change_count_1h": [v[2] for v in values],
    })


def test_stream_values_missing_offline_are_repaired_and_mismatches_counted(
        store: DuckDBOfflineStore, online: RedisOnlineStore, recent: datetime) -> None:
    now = recent + timedelta(minutes=30)
    t1, t2 = recent - timedelta(hours=2), recent - timedelta(hours=1)
    # offline history as ingestion wrote it
    store.append_features(SECURITY, _rows([("a1", t1, 1), ("a2", t1, 2), ("a3", t1, 3), ("a4", t1, 4)]))
    # online: a1 same as offline; a2 newer than offline (ingestion crashed before the offline append);
    # a3 same time, different value (skew); a4 missing online; a5 only online
    online.write_batch(SECURITY, _rows([("a1", t1, 1), ("a2", t2, 5), ("a3", t1, 99), ("a5", t2, 7)]))

    result = sync_group(store, online, SECURITY, run_id="run-1", now=now)

    assert result.repaired_offline == 2  # a2@t2 and a5@t2
    repaired = store.query(f"SELECT account_id, security_change_count_1h FROM {SECURITY.table_name} "
                           "WHERE event_time = ? ORDER BY account_id", [t2]).to_pylist()
    assert repaired == [{"account_id": "a2", "security_change_count_1h": 5},
                        {"account_id": "a5", "security_change_count_1h": 7}]
    assert (result.offline_entities, result.online_entities) == (5, 4)
    assert (result.missing_online, result.stale_online, result.value_mismatch) == (1, 0, 1)
    assert result.mismatch_rate == pytest.approx(2 / 5)
    assert result.latest_event_time == t2
    assert result.freshness_s == (now - t2).total_seconds()

    again = sync_group(store, online, SECURITY, run_id="run-2", now=now)
    assert again.repaired_offline == 0  # idempotent
    runs = store.query(f"SELECT run_id, group_name, repaired_offline, value_mismatch FROM {SYNC_RUNS_TABLE} "
                       "ORDER BY run_id").to_pylist()
    assert runs == [{"run_id": "run-1", "group_name": SECURITY.name, "repaired_offline": 2, "value_mismatch": 1},
                    {"run_id": "run-2", "group_name": SECURITY.name, "repaired_offline": 0, "value_mismatch": 1}]
    alerts = [dict(zip(("key", "value"), m, strict=True)) for m in alert_messages([result.to_dict()], 0.1)]
    assert [a["key"] for a in alerts] == [SECURITY.name]
    assert '"online_offline_mismatch"' in alerts[0]["value"]


def test_batch_group_is_materialized_and_stale_online_values_counted(
        seeded: DuckDBOfflineStore, online: RedisOnlineStore, recent: datetime) -> None:
    group = get_group("ip_hourly")
    now = recent + timedelta(minutes=5)
    run_batch_group(seeded, online, group, recent - timedelta(hours=2), recent - timedelta(hours=1), now=now)
    # the next hour lands offline only (as if its online publish had failed)
    compute_group(seeded, group, *tick_bounds(recent - timedelta(hours=1), recent))
    result = sync_group(seeded, online, group, run_id="r", now=now)
    assert result.offline_entities > 0
    assert result.stale_online + result.missing_online == result.offline_entities  # all behind before the sync
    assert result.materialized_online == result.offline_entities
    assert result.repaired_offline == 0

    after = sync_group(seeded, online, group, run_id="r2", now=now)
    assert (after.stale_online, after.missing_online, after.value_mismatch) == (0, 0, 0)
    assert after.mismatch_rate == 0.0

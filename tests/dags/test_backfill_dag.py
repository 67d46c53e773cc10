"""`airflow dags test features_backfill` twice with the UI form's conf: identical data, events on Kafka."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from features.backfill import REGISTRY_EVENTS_TOPIC
from features.batch.synthetic import synthetic_logins, synthetic_transactions
from features.definitions.catalog import get_group
from features.offline import DuckDBOfflineStore
from features.registry import Registry
from riskpipe.stack.offline import ensure_schema

pytestmark = pytest.mark.integration

START = datetime(2024, 3, 1)
GROUPS = ["account_txn_velocity", "ip_hourly"]


def _snapshot(settings_path: object) -> dict[str, list[dict]]:
    store = DuckDBOfflineStore(settings_path)  # type: ignore[arg-type]
    try:
        out = {}
        for name in GROUPS:
            group = get_group(name)
            cols = ", ".join([group.entity.join_key, "event_time", *(f.name for f in group.features)])
            out[name] = store.query(f"SELECT {cols} FROM {group.table_name} ORDER BY ALL").to_pylist()
        return out
    finally:
        store.close()


def _events(broker: str) -> list[dict]:
    """Everything on the events topic, read by partition assignment (no consumer-group join to wait for)."""
    consumer = Consumer({"bootstrap.servers": broker, "group.id": "unused", "enable.auto.commit": False})
    try:
        partitions = consumer.list_topics(REGISTRY_EVENTS_TOPIC, timeout=10).topics[REGISTRY_EVENTS_TOPIC].partitions
        consumer.assign([TopicPartition(REGISTRY_EVENTS_TOPIC, p, OFFSET_BEGINNING) for p in partitions])
        found: list[dict] = []
        idle = 0
        while idle < 6:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                idle += 1
                continue
            found.append(json.loads(msg.value()))
        return found
    finally:
        consumer.close()


def test_backfill_dag_twice_is_idempotent_and_publishes(dag_runner: Any) -> None:
    settings = dag_runner.settings
    ensure_schema(settings)  # every raw table, as `riskpipe up` creates them
    store = DuckDBOfflineStore(settings.duckdb_path)
    store.append("events_transactions", synthetic_transactions(400, seed=5, start=START, span=timedelta(days=2)))
    store.append("events_logins", synthetic_logins(400, seed=6, start=START, span=timedelta(days=2)))
    store.close()
    conf = {"groups": GROUPS, "start": "2024-03-01", "end": "2024-03-02", "dry_run": False,
            "include_plan": True}

    dag_runner.test("features_backfill", datetime(2024, 3, 10, tzinfo=UTC), conf)
    first = _snapshot(settings.duckdb_path)
    dag_runner.test("features_backfill", datetime(2024, 3, 11, tzinfo=UTC), conf)
    second = _snapshot(settings.duckdb_path)

    assert first == second
    assert all(first[name] for name in GROUPS)
    hours = {r["event_time"] for r in first["ip_hourly"]}
    assert min(hours) >= START and max(hours) < START + timedelta(days=2)
    store = DuckDBOfflineStore(settings.duckdb_path)
    try:
        assert "ip_hourly" in Registry(store).active()  # include_plan recorded the plan after the backfill
    finally:
        store.close()
    events = [e for e in _events(settings.bootstrap_servers) if e["start"] == "2024-03-01" and e["group"] in GROUPS]
    assert len(events) == 2 * len(GROUPS)  # one per group per run
    assert all(e["event"] == "feature_group_backfilled" and e["rows"] > 0 for e in events)

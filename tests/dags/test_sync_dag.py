"""`airflow dags test features_sync` against real DuckDB and Redis: one sync_runs row per group."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest

from features.definitions.catalog import FEATURE_GROUPS, get_group
from features.offline import DuckDBOfflineStore
from features.online.redis_store import RedisOnlineStore
from features.sync import SYNC_RUNS_TABLE

pytestmark = pytest.mark.integration


def test_sync_dag_repairs_and_records_every_group(dag_runner: Any) -> None:
    settings = dag_runner.settings
    group = get_group("account_security_changes")
    when = datetime.now(UTC).replace(microsecond=0, tzinfo=None) - timedelta(minutes=5)
    RedisOnlineStore.from_settings(settings).write_batch(group, pa.table({
        "account_id": ["acc-1", "acc-2"], "event_time": pa.array([when, when], pa.timestamp("us")),
        "security_change_count_1h": [1, 2],
    }))
    DuckDBOfflineStore(settings.duckdb_path).close()  # the file exists, nothing else in it

    dag_runner.test("features_sync", datetime.now(UTC).replace(second=0, microsecond=0))

    store = DuckDBOfflineStore(settings.duckdb_path)
    try:
        runs = store.query(f"SELECT group_name, repaired_offline FROM {SYNC_RUNS_TABLE}").to_pylist()
        repaired = store.query(f"SELECT account_id, security_change_count_1h FROM {group.table_name} "
                               "ORDER BY account_id").to_pylist()
    finally:
        store.close()
    assert sorted(r["group_name"] for r in runs) == sorted(g.name for g in FEATURE_GROUPS)
    assert {r["group_name"]: r["repaired_offline"] for r in runs}[group.name] == 2
    assert repaired == [{"account_id": "acc-1", "security_change_count_1h": 1},
                        {"account_id": "acc-2", "security_change_count_1h": 2}]

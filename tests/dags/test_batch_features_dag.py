"""`airflow dags test features_batch_hourly` against real DuckDB and Redis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from features.batch.synthetic import synthetic_logins
from features.definitions.catalog import get_group
from features.offline import DuckDBOfflineStore
from features.online.redis_store import RedisOnlineStore

pytestmark = pytest.mark.integration


def test_hourly_dag_materializes_the_interval_tick(dag_runner: Any) -> None:
    settings = dag_runner.settings
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0, tzinfo=None)
    store = DuckDBOfflineStore(settings.duckdb_path)
    store.append("events_logins", synthetic_logins(300, seed=3, start=hour - timedelta(hours=3),
                                                   span=timedelta(hours=3)))
    store.close()  # DuckDB has one writer: the DAG's tasks must be able to open the file

    # `dags test` at `hour` runs the interval that ends there, [hour-1h, hour): it computes the tick at `hour`
    dag_runner.test("features_batch_hourly", hour.replace(tzinfo=UTC))

    group = get_group("ip_hourly")
    store = DuckDBOfflineStore(settings.duckdb_path)
    try:
        rows = store.query(f"SELECT * FROM {group.table_name} ORDER BY ip").to_pylist()
    finally:
        store.close()
    assert rows and {r["event_time"] for r in rows} == {hour}
    online = RedisOnlineStore.from_settings(settings)
    vectors = online.read_many([{"ip": r["ip"]} for r in rows], [group])
    assert [v["ip_hourly"].values["ip_login_count_1h"] for v in vectors] == [r["ip_login_count_1h"] for r in rows]

"""A backfill triggered through the REST API of a running `airflow standalone` writes the data.

Slow (~60-90 s on an idle machine): the whole embedded stack Airflow needs (broker, Redis, the
offline schema, Airflow) starts on free ports in a tmp data dir and is always stopped.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from features.batch.synthetic import synthetic_logins
from features.definitions.catalog import get_group
from features.offline import DuckDBOfflineStore
from riskpipe.airflow_api import AirflowClient
from riskpipe.settings import Settings
from riskpipe.stack import supervisor
from riskpipe.stack.net import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DAY = datetime(2024, 4, 1)


def test_backfill_through_the_rest_api(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "rp", broker_port=free_port(), redis_port=free_port(),
                        airflow_api_port=free_port(), airflow_worker_log_port=free_port(),
                        airflow_trigger_log_port=free_port(), airflow_parallelism=2, offline_lock_wait_s=60)
    settings.data_dir.mkdir(parents=True)
    store = DuckDBOfflineStore(settings.duckdb_path)
    store.append("events_logins", synthetic_logins(300, seed=9, start=DAY, span=timedelta(days=1)))
    store.close()
    try:
        supervisor.up(settings, ["airflow"], report=lambda _: None)
        client = AirflowClient.from_settings(settings)  # the same REST client `riskpipe demo` uses
        try:
            client.wait_for_dag("features_backfill")
            conf = {"groups": ["ip_hourly"], "start": "2024-04-01", "end": "2024-04-01", "dry_run": False,
                    "include_plan": False}
            run_id = client.trigger("features_backfill", conf)
            assert client.wait("features_backfill", run_id, timeout_s=300)["state"] == "success"
            page = client.http.get("/riskpipe/feature-groups/")  # the plugin's page is served by the API server
            assert page.status_code == 200 and "ip_hourly" in page.text
        finally:
            client.close()
    finally:
        supervisor.down(settings, report=lambda _: None)
    store = DuckDBOfflineStore(settings.duckdb_path)
    try:
        hours = store.query(f"SELECT DISTINCT event_time FROM {get_group('ip_hourly').table_name} ORDER BY 1")
    finally:
        store.close()
    # one tick per hour of the day; 00:00 describes the previous day's last hour, which had no events
    assert hours.column(0).to_pylist() == [DAY + timedelta(hours=h) for h in range(1, 24)]

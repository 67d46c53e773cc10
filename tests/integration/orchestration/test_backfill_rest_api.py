"""A backfill triggered through the REST API of a running `airflow standalone` writes the data.

Slow (~60-90 s on an idle machine): the whole embedded stack Airflow needs (broker, Redis, the
offline schema, Airflow) starts on free ports in a tmp data dir and is always stopped.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest

from features.batch.synthetic import synthetic_logins
from features.definitions.catalog import get_group
from features.offline import DuckDBOfflineStore
from riskpipe.settings import Settings
from riskpipe.stack import supervisor
from riskpipe.stack.airflow import ADMIN_USER, admin_password
from riskpipe.stack.net import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DAY = datetime(2024, 4, 1)


def _wait_dag(client: httpx.Client, dag_id: str, timeout: float = 240) -> None:
    """The dag-processor parses new files on its own schedule: wait until the API knows the DAG."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get(f"/api/v2/dags/{dag_id}").status_code == 200:
            return
        time.sleep(2)
    raise AssertionError(f"{dag_id} never appeared in the API")


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
        password = admin_password(settings)
        assert password
        with httpx.Client(base_url=settings.airflow_url, timeout=30) as client:
            token = client.post("/auth/token", json={"username": ADMIN_USER, "password": password})
            assert token.status_code in (200, 201), token.text
            client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
            _wait_dag(client, "features_backfill")
            client.patch("/api/v2/dags/features_backfill", json={"is_paused": False})
            conf = {"groups": ["ip_hourly"], "start": "2024-04-01", "end": "2024-04-01", "dry_run": False,
                    "include_plan": False}
            run = client.post("/api/v2/dags/features_backfill/dagRuns", json={"logical_date": None, "conf": conf})
            assert run.status_code in (200, 201), run.text
            run_id = run.json()["dag_run_id"]
            state, deadline = "queued", time.monotonic() + 300
            while state not in ("success", "failed") and time.monotonic() < deadline:
                time.sleep(3)
                state = client.get(f"/api/v2/dags/features_backfill/dagRuns/{run_id}").json()["state"]
            assert state == "success"
            page = client.get("/riskpipe/feature-groups/")  # the plugin's page is served by the API server
            assert page.status_code == 200 and "ip_hourly" in page.text
    finally:
        supervisor.down(settings, report=lambda _: None)
    store = DuckDBOfflineStore(settings.duckdb_path)
    try:
        hours = store.query(f"SELECT DISTINCT event_time FROM {get_group('ip_hourly').table_name} ORDER BY 1")
    finally:
        store.close()
    # one tick per hour of the day; 00:00 describes the previous day's last hour, which had no events
    assert hours.column(0).to_pylist() == [DAY + timedelta(hours=h) for h in range(1, 24)]

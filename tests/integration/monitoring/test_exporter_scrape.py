"""The exporter on a free port against the real broker and DuckDB: scrape /metrics like Prometheus does."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta

import httpx
import pytest
from lag_harness import drive_group

from features.offline.duckdb_store import DuckDBOfflineStore
from features.sync import SyncResult, record_sync_runs
from monitoring.exporter import serve
from monitoring.figures import parse_samples
from riskpipe.settings import Settings
from riskpipe.stack.net import free_port
from streaming.status import WorkerStatus

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _sync_result(group: str, mismatch_rate: float) -> SyncResult:
    now = datetime(2026, 1, 2, 3, 4, 5)
    return SyncResult(run_id="r1", run_at=now, group_name=group, version=1, schedule="stream", ttl_s=3600,
                      offline_entities=100, online_entities=98, missing_online=2, stale_online=0, value_mismatch=1,
                      mismatch_rate=mismatch_rate, repaired_offline=0, materialized_online=0,
                      latest_event_time=now - timedelta(seconds=40), freshness_s=40.0)


@pytest.fixture
def exporter_settings(settings: Settings, broker: str, unique: str) -> Settings:
    return settings.model_copy(update={
        "kafka_bootstrap_servers": broker, "stream_app_id": f"{unique}-stream", "ingest_group_id": f"{unique}-ingest",
        "archive_group_id": f"{unique}-archive", "monitoring_group_id": f"{unique}-monitoring",
        "exporter_port": free_port(), "exporter_sync_refresh_s": 0.0,
        "exporter_offline_wait_s": 0.3,
    })


@pytest.fixture
def scrape(exporter_settings: Settings) -> Iterator:
    server, thread = serve(exporter_settings)
    url = f"http://{exporter_settings.host}:{exporter_settings.exporter_port}/metrics"

    def _scrape() -> Samples:
        response = httpx.get(url, timeout=30)
        assert response.status_code == 200
        return {(name, tuple(sorted(labels.items()))): value for name, labels, value in parse_samples(response.text)}

    yield _scrape
    server.shutdown()
    thread.join(5)


def test_scrape_serves_lag_workers_sync_and_process(exporter_settings: Settings, scrape, unique: str) -> None:
    s = exporter_settings
    topic = f"{unique}.events.transactions"
    drive_group(s.bootstrap_servers, topic, s.stream_app_id, produced={0: 9, 1: 6}, consumed={0: 2, 1: 1})
    status = WorkerStatus("stream-compute", state="running")
    status.counters["events"] = 3
    status.saw_event_time(int(time.time() * 1e6))
    status.write(s, force=True)
    store = DuckDBOfflineStore(s.duckdb_path)
    record_sync_runs(store, [_sync_result("account_txn_velocity", 0.03)])
    store.close()

    samples = scrape()
    lag = (("consumer", "stream-compute"), ("group", s.stream_app_id), ("topic", topic))
    assert samples[("riskpipe_consumer_lag", lag)] == (9 - 2) + (6 - 1)
    assert samples[("riskpipe_worker_up", (("worker", "stream-compute"),))] == 1
    assert samples[("riskpipe_worker_up", (("worker", "stream-ingest"),))] == 0
    assert samples[("riskpipe_worker_events_total", (("counter", "events"), ("worker", "stream-compute")))] == 3
    assert samples[("riskpipe_sync_mismatch_rate", (("group", "account_txn_velocity"),))] == pytest.approx(0.03)
    assert samples[("riskpipe_sync_freshness_seconds", (("group", "account_txn_velocity"),))] == 40
    for source in ("broker", "workers", "offline", "monitoring"):
        assert samples[("riskpipe_exporter_source_up", (("source", source),))] == 1, source
    assert samples[("process_resident_memory_bytes", ())] > 0


def test_locked_offline_store_serves_last_sync_figures(exporter_settings: Settings, scrape) -> None:
    s = exporter_settings
    store = DuckDBOfflineStore(s.duckdb_path)
    record_sync_runs(store, [_sync_result("account_withdrawals", 0.5)])
    store.close()
    key = ("riskpipe_sync_mismatch_rate", (("group", "account_withdrawals"),))
    assert scrape()[key] == 0.5

    # another process takes DuckDB's single-writer lock, as ingestion or an Airflow task does
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1]); "
                               "print('locked', flush=True); sys.stdin.read()", str(s.duckdb_path)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        samples = scrape()
        assert samples[("riskpipe_exporter_source_up", (("source", "offline"),))] == 0
        assert samples[key] == 0.5  # the last values, not a gap
    finally:
        holder.communicate("", timeout=10)
    assert scrape()[("riskpipe_exporter_source_up", (("source", "offline"),))] == 1

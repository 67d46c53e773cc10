"""Status files: what `riskpipe status` shows for a worker, and when its health check fails."""

from __future__ import annotations

import time
from pathlib import Path

from riskpipe.settings import Settings
from streaming.status import WorkerStatus, is_fresh, progress_line, read_status


def test_progress_shows_counts_last_event_and_freshness(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    status = WorkerStatus("stream-compute", state="running")
    status.counters.update(events=1200, updates=3400)
    now = time.time()
    status.saw_event_time(int((now - 90) * 1e6))
    status.saw_event_time(int((now - 900) * 1e6))  # older: does not move the last event time back
    status.write(settings, force=True)
    line = progress_line(settings, "stream-compute", now=now)
    assert "events=1200" in line and "updates=3400" in line
    assert "freshness 90s" in line
    assert is_fresh(settings, "stream-compute", now=now)


def test_stale_or_stopped_workers_are_not_healthy(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, worker_status_interval_s=1.0)
    assert not is_fresh(settings, "stream-ingest")
    assert progress_line(settings, "stream-ingest") == "no status yet"
    status = WorkerStatus("stream-ingest", state="running")
    status.write(settings, force=True)
    later = time.time() + 60
    assert not is_fresh(settings, "stream-ingest", now=later)
    assert progress_line(settings, "stream-ingest", now=later).startswith("STALE")
    status.state = "stopped"
    status.write(settings, force=True)
    assert not is_fresh(settings, "stream-ingest")
    assert read_status(settings, "stream-ingest")["state"] == "stopped"


def test_write_is_throttled_unless_forced(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, worker_status_interval_s=60.0)
    status = WorkerStatus("stream-archive", state="running")
    status.write(settings, force=True)
    status.counters["archived"] = 5
    status.write(settings)
    assert read_status(settings, "stream-archive")["counters"] == {}
    status.write(settings, force=True)
    assert read_status(settings, "stream-archive")["counters"] == {"archived": 5}

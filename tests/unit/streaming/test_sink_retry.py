"""A sink that fails is retried with backoff until it succeeds; nothing is dropped, the status says why."""

from __future__ import annotations

from pathlib import Path

import pytest

from riskpipe.settings import Settings
from streaming.retry import retry_until_done
from streaming.status import WorkerStatus, read_status


def test_retries_with_growing_delays_until_the_sink_is_back(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    status = WorkerStatus("stream-ingest", state="running")
    attempts: list[int] = []
    sleeps: list[float] = []

    def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 5:
            raise ConnectionError("redis is down")
        return "written"

    assert retry_until_done(flaky, "store write", settings=settings, status=status, sleep=sleeps.append,
                            first_delay_s=0.1, max_delay_s=0.5) == "written"
    assert sleeps == [0.1, 0.2, 0.4, 0.5]
    assert status.counters["retries"] == 4
    assert status.state == "running" and status.detail == ""
    assert read_status(settings, "stream-ingest")["state"] == "retrying"  # what `riskpipe status` showed meanwhile


def test_shutdown_interrupts_the_retry_loop(tmp_path: Path) -> None:
    def down() -> None:
        raise TimeoutError("offline store locked")

    with pytest.raises(TimeoutError):
        retry_until_done(down, "store write", settings=Settings(data_dir=tmp_path), status=WorkerStatus("w"),
                         should_stop=lambda: True, sleep=lambda _s: None)

"""Fixtures of the streaming integration tests (helpers live in ``stream_harness``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from stream_harness import Workers

from riskpipe.settings import Settings


@pytest.fixture
def stream_settings(settings: Settings, broker: str, redis_url: str, unique: str) -> Settings:
    """Everything named after the test, small session timeouts, fast status refresh, checkpoints every 3 s (tests
    wait for committed offsets; the 10 s default is tuned for throughput)."""
    return settings.model_copy(update={
        "kafka_bootstrap_servers": broker, "redis_url": redis_url, "online_key_prefix": unique,
        "topic_prefix": f"{unique}.", "stream_app_id": f"{unique}-stream", "ingest_group_id": f"{unique}-ingest",
        "archive_group_id": f"{unique}-archive", "kafka_session_timeout_ms": 2000,
        "worker_status_interval_s": 0.5, "stream_batch_size": 500, "stream_batch_window_s": 0.2,
        "ingest_flush_s": 0.5, "ingest_offline_flush_s": 0.5, "stream_checkpoint_s": 3.0,
        "offline_lock_wait_s": 30.0,
        # small segments: the simulated days' states are short, and recovery after the crash must read segments
        "stream_segment_events": 4,
    })


@pytest.fixture
def workers(stream_settings: Settings, tmp_path: Path) -> Iterator[Workers]:
    w = Workers(stream_settings, tmp_path)
    yield w
    w.stop_all()

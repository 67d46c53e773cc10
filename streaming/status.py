"""Worker status files: what `riskpipe status` shows per streaming worker (progress, last event, freshness).

Each worker rewrites ``<run_dir>/<worker>.status.json`` every few seconds (atomically, via
rename) with its counters and the newest event time it has handled. The supervisor's health
check and progress column only *read* these files, so `riskpipe status` never has to talk to
the broker or the worker, and a wedged worker shows up as a stale file.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from riskpipe.settings import Settings

STALE_AFTER_INTERVALS = 5  # a status older than this many refresh intervals means the worker is stuck or gone


def status_path(settings: Settings, worker: str) -> Path:
    return settings.run_dir / f"{worker}.status.json"


@dataclass
class WorkerStatus:
    """Counters of one worker process; ``write`` persists them, ``read_status`` loads them back."""

    worker: str
    state: str = "starting"  # starting | running | retrying | stopped
    counters: Counter[str] = field(default_factory=Counter)
    last_event_us: int | None = None
    detail: str = ""
    pid: int = field(default_factory=os.getpid)
    started_at: float = field(default_factory=time.time)
    _last_write: float = 0.0

    def saw_event_time(self, t_us: int) -> None:
        if self.last_event_us is None or t_us > self.last_event_us:
            self.last_event_us = t_us

    def to_dict(self) -> dict[str, Any]:
        return {"worker": self.worker, "state": self.state, "counters": dict(self.counters),
                "last_event_us": self.last_event_us, "detail": self.detail, "pid": self.pid,
                "started_at": self.started_at, "updated_at": time.time()}

    def write(self, settings: Settings, *, force: bool = False) -> None:
        """Persist at most once per ``worker_status_interval_s`` unless forced (cheap to call per batch)."""
        now = time.monotonic()
        if not force and now - self._last_write < settings.worker_status_interval_s:
            return
        self._last_write = now
        path = status_path(settings, self.worker)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")  # the ingest writer thread writes too
        tmp.write_text(json.dumps(self.to_dict()))
        os.replace(tmp, path)


def read_status(settings: Settings, worker: str) -> dict[str, Any] | None:
    try:
        return json.loads(status_path(settings, worker).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def is_fresh(settings: Settings, worker: str, *, now: float | None = None) -> bool:
    """The worker reported ``running`` recently (its health check)."""
    status = read_status(settings, worker)
    if status is None or status.get("state") not in ("running", "retrying"):
        return False
    age = (now or time.time()) - float(status.get("updated_at", 0))
    return age <= settings.worker_status_interval_s * STALE_AFTER_INTERVALS


def _ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172_800:
        return f"{seconds / 3600:.0f}h"
    return f"{seconds / 86_400:.0f}d"


def progress_line(settings: Settings, worker: str, *, now: float | None = None) -> str:
    """One line for `riskpipe status`: counters, last event time and its age (freshness)."""
    status = read_status(settings, worker)
    if status is None:
        return "no status yet"
    now = now or time.time()
    counters = status.get("counters", {})
    parts = [f"{k}={v}" for k, v in sorted(counters.items()) if v]
    last = status.get("last_event_us")
    if last is not None:
        when = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(last))
        parts.append(f"last event {when:%Y-%m-%d %H:%M:%S}Z (freshness {_ago(now - when.timestamp())})")
    if status.get("state") != "running":
        parts.insert(0, str(status.get("state")))
    elif not parts:
        parts.append("idle: no events yet")
    if status.get("detail"):
        parts.append(str(status["detail"]))
    age = now - float(status.get("updated_at", 0))
    if age > settings.worker_status_interval_s * STALE_AFTER_INTERVALS:
        parts.insert(0, f"STALE (no report for {_ago(age)})")
    return ", ".join(parts)

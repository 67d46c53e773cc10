"""Retry with capped exponential backoff, for sinks that must never drop a batch (Redis, DuckDB, Kafka).

A worker that cannot write keeps its batch, keeps its offsets uncommitted and tries again;
when the store comes back it catches up from where it was. The status file says ``retrying``
with the last error meanwhile, so `riskpipe status` shows why nothing moves.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from riskpipe.settings import Settings
from streaming.status import WorkerStatus

log = logging.getLogger(__name__)
T = TypeVar("T")


def retry_until_done(fn: Callable[[], T], what: str, *, settings: Settings, status: WorkerStatus,
                     should_stop: Callable[[], bool] = lambda: False, first_delay_s: float = 0.2,
                     max_delay_s: float = 10.0, sleep: Callable[[float], None] = time.sleep) -> T:
    """Call ``fn`` until it succeeds; raise only when ``should_stop`` says the worker is shutting down."""
    delay = first_delay_s
    attempt = 0
    while True:
        try:
            result = fn()
        except Exception as exc:  # the sink is down or busy: wait and retry, never drop
            attempt += 1
            status.state = "retrying"
            status.detail = f"{what} failed {attempt}x: {type(exc).__name__}: {str(exc)[:160]}"
            status.counters["retries"] += 1
            status.write(settings, force=attempt == 1)
            log.warning("write failed, retrying", extra={"what": what, "attempt": attempt, "delay_s": delay,
                                                         "error": f"{type(exc).__name__}: {exc}"})
            if should_stop():
                raise
            sleep(delay)
            delay = min(max_delay_s, delay * 2)
            continue
        if attempt:
            log.info("write succeeded after retries", extra={"what": what, "attempts": attempt + 1})
            status.state, status.detail = "running", ""
        return result

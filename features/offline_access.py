"""How orchestrated tasks open the offline store: briefly, and patiently with DuckDB's file lock.

DuckDB allows one writing process per file. Airflow runs tasks as separate processes (the
LocalExecutor runs several at once), and the stream ingestion worker may append too, so a
task that finds the file locked waits and retries instead of failing the DAG run; every
caller opens the store per call and closes it at once, never holding it across tasks.

In production the offline store is Snowflake, reached through the Airflow Snowflake
provider: ``snowflake_store_from_connection`` wraps a connection that ``SnowflakeHook.get_conn()``
made, so credentials live in the Airflow connection, not in riskpipe's settings.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from features.offline.base import OfflineStore
from riskpipe.errors import UsageError
from riskpipe.settings import Settings

log = logging.getLogger(__name__)

_RETRY_SLEEP_S = 0.25


def is_lock_conflict(exc: BaseException) -> bool:
    """DuckDB's "another process holds the file" error (an IOException naming the lock)."""
    return isinstance(exc, duckdb.IOException) and "lock" in str(exc).lower()


def open_duckdb_store(path: Path | str, wait_s: float) -> OfflineStore:
    """A DuckDB store on ``path``, retrying for up to ``wait_s`` while another process holds the lock."""
    from features.offline.duckdb_store import DuckDBOfflineStore

    deadline = time.monotonic() + wait_s
    while True:
        try:
            return DuckDBOfflineStore(path)
        except duckdb.IOException as exc:
            if not is_lock_conflict(exc) or time.monotonic() >= deadline:
                if is_lock_conflict(exc):
                    raise UsageError(f"offline store {path} stayed locked by another process for {wait_s:.0f}s "
                                     f"(RISKPIPE_OFFLINE_LOCK_WAIT_S): {exc}") from exc
                raise
            time.sleep(_RETRY_SLEEP_S)


def open_offline_store(settings: Settings, wait_s: float | None = None) -> OfflineStore:
    """The configured store; DuckDB waits for its lock (``settings.offline_lock_wait_s`` by default)."""
    if settings.offline_backend == "duckdb":
        return open_duckdb_store(str(settings.duckdb_path),
                                 settings.offline_lock_wait_s if wait_s is None else wait_s)
    from features.offline import get_offline_store

    return get_offline_store(settings)


@contextmanager
def offline_session(settings: Settings, wait_s: float | None = None) -> Iterator[OfflineStore]:
    """Open, use, close: the only way tasks should touch the offline store."""
    store = open_offline_store(settings, wait_s)
    try:
        yield store
    finally:
        store.close()


def snowflake_store_from_connection(connection: Any) -> OfflineStore:
    """Wrap an open Snowflake connection (from ``SnowflakeHook.get_conn()``) as an offline store.

    The store binds ``?`` placeholders, so the connection must use the ``qmark`` paramstyle
    (``hook_paramstyle_qmark`` sets it before the hook connects).
    """
    from features.offline.snowflake_store import SnowflakeOfflineStore

    class _ConnectedSnowflakeStore(SnowflakeOfflineStore):
        """SnowflakeOfflineStore over a connection someone else opened (the store only opens its own)."""

        def __init__(self, conn: Any) -> None:  # the parent __init__ always opens its own connection
            self._conn = conn
            self._lock = threading.RLock()

    paramstyle = getattr(connection, "_paramstyle", "qmark")
    if paramstyle not in ("qmark", "numeric"):
        raise UsageError(f"snowflake connection uses paramstyle {paramstyle!r}; the offline store needs 'qmark'")
    return _ConnectedSnowflakeStore(connection)


@contextmanager
def hook_paramstyle_qmark() -> Iterator[None]:
    """Make connections opened in the block bind ``?`` (SnowflakeHook does not pass a paramstyle).

    ``snowflake.connector.paramstyle`` is the connector's documented module-level default.
    """
    import snowflake.connector

    previous = snowflake.connector.paramstyle
    snowflake.connector.paramstyle = "qmark"
    try:
        yield
    finally:
        snowflake.connector.paramstyle = previous

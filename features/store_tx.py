"""``atomic(store)``: group several offline-store writes into one transaction where that is sound.

DuckDB runs DDL inside transactions, so a delete-then-rewrite (backfill) or a multi-table
registry apply is all-or-nothing there. Snowflake commits implicitly on every DDL statement,
and the store's writes create tables and temporary stages, so an explicit transaction would
silently end half-way: on Snowflake the block runs without one and callers rely on being
idempotent (rerunning a failed backfill or apply converges) instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from features.offline.base import OfflineStore


@contextmanager
def atomic(store: OfflineStore) -> Iterator[None]:
    """All writes in the block commit together (DuckDB), or run as they come (Snowflake)."""
    if getattr(store, "dialect", None) != "duckdb":
        yield
        return
    store.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        store.execute("ROLLBACK")
        raise
    store.execute("COMMIT")

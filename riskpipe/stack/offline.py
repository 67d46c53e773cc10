"""The offline store's base schema: raw event tables and labels, derived from the event contracts.

Feature-group tables are created by the registry and the writers; the raw tables must
exist before the first simulator load or archive replay, so `riskpipe up` creates them.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from events.contracts import EVENT_TYPES, Event, FraudLabel
from events.schemas import TIMESTAMP, arrow_schema
from riskpipe.settings import Settings

# Portable column types: the same DDL runs on DuckDB and Snowflake (TIMESTAMP = naive UTC there).
_SQL_TYPES: dict[pa.DataType, str] = {
    pa.string(): "VARCHAR", pa.float64(): "DOUBLE", pa.int64(): "BIGINT", pa.int32(): "INTEGER",
    pa.bool_(): "BOOLEAN", TIMESTAMP: "TIMESTAMP",
}


def create_table_sql(model: type[Event]) -> str:
    """CREATE TABLE IF NOT EXISTS for one contract: the columns and types of its arrow schema."""
    cols = ", ".join(f"{f.name} {_SQL_TYPES[f.type]}" for f in arrow_schema(model))
    return f"CREATE TABLE IF NOT EXISTS {model.table} ({cols})"


RAW_TABLES: tuple[type[Event], ...] = (*EVENT_TYPES, FraudLabel)


def ensure_schema(settings: Settings) -> None:
    """Create the raw event and label tables where missing (idempotent).

    Waits for DuckDB's file lock (``offline_lock_wait_s``): on a running stack the ingestion worker,
    Airflow tasks and monitoring take it in turns, and a second `riskpipe up` must not fail on that.
    """
    from features.offline_access import offline_session

    with offline_session(settings) as store:
        for model in RAW_TABLES:
            store.execute(create_table_sql(model))


def schema_ready(settings: Settings) -> bool:
    """True when every raw table exists.

    A DuckDB file another process keeps locked past a few seconds (ingestion, an Airflow task) is in
    use, which only happens after `up` created the schema: it counts as ready rather than flapping
    `riskpipe status` to unhealthy whenever a writer is busy.
    """
    from features.offline_access import offline_session
    from riskpipe.errors import UsageError

    try:
        with offline_session(settings, wait_s=5) as store:
            return all(store.table_exists(m.table) for m in RAW_TABLES)
    except UsageError:  # "stayed locked by another process"
        return settings.offline_backend == "duckdb" and Path(str(settings.duckdb_path)).exists()
    except Exception:
        return False

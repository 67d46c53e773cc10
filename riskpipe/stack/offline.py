"""The offline store's base schema: raw event tables and labels, derived from the event contracts.

Feature-group tables are created by the registry and the writers; the raw tables must
exist before the first simulator load or archive replay, so `riskpipe up` creates them.
"""

from __future__ import annotations

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
    """Create the raw event and label tables where missing (idempotent)."""
    from features.offline import get_offline_store

    store = get_offline_store(settings)
    try:
        for model in RAW_TABLES:
            store.execute(create_table_sql(model))
    finally:
        store.close()


def schema_ready(settings: Settings) -> bool:
    """True when every raw table exists."""
    from features.offline import get_offline_store

    try:
        store = get_offline_store(settings)
    except Exception:
        return False
    try:
        return all(store.table_exists(m.table) for m in RAW_TABLES)
    finally:
        store.close()

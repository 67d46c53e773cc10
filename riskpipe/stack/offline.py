"""The offline store's base schema: raw event tables and labels, derived from the event contracts.

Feature-group tables are created by the registry and the writers; the raw tables must
exist before the first simulator load or archive replay, so `riskpipe up` creates them.
"""

from __future__ import annotations

import types
import typing
from datetime import datetime

from events.contracts import EVENT_TYPES, Event, FraudLabel
from riskpipe.settings import Settings

# Portable column types: the same DDL runs on DuckDB and Snowflake (TIMESTAMP = naive UTC there).
_SQL_TYPES: dict[type, str] = {str: "VARCHAR", float: "DOUBLE", int: "BIGINT", bool: "BOOLEAN", datetime: "TIMESTAMP"}


def _base_type(annotation: object) -> type:
    """Strip Optional/Annotated/Literal down to the Python type the column stores."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _base_type(typing.get_args(annotation)[0])
    if origin is typing.Literal:
        return type(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return _base_type(next(a for a in typing.get_args(annotation) if a is not type(None)))
    return typing.cast(type, annotation)


def create_table_sql(model: type[Event]) -> str:
    """CREATE TABLE IF NOT EXISTS for one contract, columns in contract order."""
    cols = ", ".join(f"{name} {_SQL_TYPES[_base_type(f.annotation)]}" for name, f in model.model_fields.items())
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

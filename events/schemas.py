"""Arrow schemas of the raw event tables, derived from the pydantic contracts.

The simulator builds columns with numpy and the replay loader reads foreign files with
pyarrow; both must produce exactly the columns and types the offline store and the lake
expect. Deriving the schema from the contract (instead of writing it down a second time)
means a field added to ``events/contracts.py`` shows up everywhere at once.

Timestamps are naive UTC ``timestamp("us")`` at the storage boundary (project convention);
``to_records`` turns them back into aware UTC datetimes for the pydantic edge.
"""

from __future__ import annotations

import types
from datetime import datetime
from functools import cache
from typing import Any, Literal, Union, get_args, get_origin

import pyarrow as pa
import pyarrow.compute as pc

from events.contracts import Event

TIMESTAMP = pa.timestamp("us")
UTC_TIMESTAMP = pa.timestamp("us", tz="UTC")


def _arrow_type(annotation: Any) -> tuple[pa.DataType, bool]:
    """(arrow type, nullable) for one pydantic field annotation."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        dtype, _ = _arrow_type(args[0])
        return dtype, True
    if origin is Literal:
        values = get_args(annotation)
        if all(isinstance(v, bool) for v in values):
            return pa.bool_(), False
        if all(isinstance(v, int) for v in values):
            return pa.int32(), False
        return pa.string(), False
    if hasattr(annotation, "__metadata__"):  # Annotated[str, Field(...)]
        return _arrow_type(get_args(annotation)[0])
    mapping: dict[Any, pa.DataType] = {
        str: pa.string(), float: pa.float64(), int: pa.int64(), bool: pa.bool_(), datetime: TIMESTAMP,
    }
    if annotation not in mapping:
        raise TypeError(f"no arrow type for contract annotation {annotation!r}")
    return mapping[annotation], False


@cache
def arrow_schema(model: type[Event]) -> pa.Schema:
    """Column names and types of ``model``'s raw table, in contract field order."""
    fields = []
    for name, info in model.model_fields.items():
        dtype, nullable = _arrow_type(info.annotation)
        fields.append(pa.field(name, dtype, nullable=nullable or not info.is_required()))
    return pa.schema(fields)


def timestamp_columns(model: type[Event]) -> list[str]:
    return [f.name for f in arrow_schema(model) if f.type == TIMESTAMP]


def conform(table: pa.Table, model: type[Event]) -> pa.Table:
    """Select and cast ``table``'s columns to ``model``'s schema (missing optional columns become null).

    Aware timestamps are converted to UTC and made naive, per the storage convention.
    """
    schema = arrow_schema(model)
    columns = []
    for field in schema:
        if field.name in table.column_names:
            col = table[field.name]
            if pa.types.is_timestamp(col.type) and col.type.tz is not None:
                col = pc.cast(col, UTC_TIMESTAMP).cast(TIMESTAMP)
            columns.append(col.cast(field.type))
        elif field.nullable:
            columns.append(pa.nulls(table.num_rows, field.type))
        else:
            raise KeyError(f"{model.__name__}: column {field.name!r} is missing")
    return pa.Table.from_arrays(columns, schema=schema)


def to_records(table: pa.Table) -> list[dict[str, Any]]:
    """Rows as dicts ready for pydantic validation; timestamps become ISO-8601 strings with ``Z``.

    Built column-wise, and with times as strings that pydantic parses in Rust: both several
    times faster than ``Table.to_pylist()`` creating timezone-aware datetime objects.
    """
    names = table.column_names
    columns = []
    for name in names:
        col = table[name]
        if pa.types.is_timestamp(col.type):
            col = pc.strftime(col.cast(TIMESTAMP), format="%Y-%m-%dT%H:%M:%SZ")
        columns.append(col.to_pylist())
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]


def from_events(events: list[Event], model: type[Event]) -> pa.Table:
    """Arrow table of validated events (used by replay and tests, not the hot simulator path)."""
    rows = [e.model_dump() for e in events]
    schema = arrow_schema(model)
    if not rows:
        return schema.empty_table()
    table = pa.Table.from_pylist(rows, schema=pa.schema(
        [pa.field(f.name, UTC_TIMESTAMP if f.type == TIMESTAMP else f.type) for f in schema]))
    return conform(table, model)

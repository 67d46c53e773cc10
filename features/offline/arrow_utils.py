"""Arrow helpers at the storage boundary: every frame is turned into one canonical shape.

The convention is naive-UTC microsecond timestamps offline. Producers hand us pandas frames,
tz-aware arrow columns or nanosecond pandas datetimes; normalising once here means both
backends and the PIT join compare like with like (an aware and a naive timestamp never meet).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from riskpipe.errors import UsageError

TS = pa.timestamp("us")

ARROW_BY_DTYPE: dict[str, pa.DataType] = {
    "int64": pa.int64(),
    "float64": pa.float64(),
    "string": pa.string(),
    "bool": pa.bool_(),
}


def to_arrow(data: Any, what: str = "data") -> pa.Table:
    """Accept an arrow Table, a pandas DataFrame or a RecordBatch; anything else is a usage error."""
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if isinstance(data, pd.DataFrame):
        return pa.Table.from_pandas(data, preserve_index=False)
    raise UsageError(f"{what}: expected a pyarrow.Table or pandas.DataFrame, got {type(data).__name__}")


def normalize_timestamps(table: pa.Table) -> pa.Table:
    """Every timestamp column -> naive UTC microseconds (tz-aware values are converted, not relabelled)."""
    columns = []
    changed = False
    for field, column in zip(table.schema, table.columns, strict=True):
        if pa.types.is_timestamp(field.type) and field.type != TS:
            # Arrow stores aware timestamps as UTC instants, so dropping the tz keeps the UTC wall time.
            column = column.cast(pa.timestamp(field.type.unit), safe=False).cast(TS, safe=False)
            changed = True
        columns.append(column)
    if not changed:
        return table
    return pa.table(columns, names=table.column_names)


def concrete_schema(schema: pa.Schema) -> pa.Schema:
    """A column whose first batch is all-null has arrow type ``null``; store it as string, not NULL."""
    return pa.schema([f.with_type(pa.string()) if pa.types.is_null(f.type) else f for f in schema])


def cast_column(table: pa.Table, name: str, target: pa.DataType, what: str) -> pa.Array | pa.ChunkedArray:
    """Cast one column with an error that names the column instead of an arrow traceback."""
    column = table.column(name)
    if column.type == target:
        return column
    try:
        return pc.cast(column, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise UsageError(f"{what}: column {name!r} of type {column.type} cannot be read as {target}: {exc}") from exc

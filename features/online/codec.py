"""Typed values <-> Redis hash field strings, per feature dtype.

Redis stores bytes, so the dtype from the group definition is what makes a read typed again.
Encoding is column-wise in Arrow (C++ casts, shortest round-trip float text) because the
write path must keep up with hundreds of thousands of rows per second; NaN is stored as
missing, since a NaN feature and an absent one mean the same thing to the model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from features.offline.arrow_utils import ARROW_BY_DTYPE, cast_column

_DECODERS: dict[str, Callable[[bytes], Any]] = {
    "int64": int,
    "float64": float,
    "string": lambda raw: raw.decode("utf-8"),
    "bool": lambda raw: raw == b"true",
}


def encode_column(table: pa.Table, name: str, dtype: str, what: str) -> list[str | None]:
    """One feature column -> field strings (None = missing), after casting to the declared dtype."""
    column = cast_column(table, name, ARROW_BY_DTYPE[dtype], what)
    if dtype == "float64":
        column = pc.if_else(pc.is_nan(column), pa.scalar(None, pa.float64()), column)
    if dtype != "string":
        column = pc.cast(column, pa.string())
    return column.to_pylist()


def decode_value(raw: bytes | None, dtype: str) -> Any:
    """Field bytes -> Python value of the dtype; None stays None."""
    return None if raw is None else _DECODERS[dtype](raw)

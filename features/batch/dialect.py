"""The few places where DuckDB and Snowflake SQL differ, behind one switch.

The batch engine writes each query once (features.batch.sql) and asks the dialect only
for literals, interval arithmetic and the ordered "last value" aggregate. Everything else
it emits (CASE inside aggregates, COUNT(DISTINCT ...), LAG ... OVER, LEFT JOIN ... GROUP BY)
means the same thing in both engines.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

DialectName = Literal["duckdb", "snowflake"]

_SNOWFLAKE_TYPES = {"string": "VARCHAR", "float64": "FLOAT", "int64": "NUMBER(38,0)", "bool": "BOOLEAN"}


@dataclass(frozen=True)
class Dialect:
    """SQL rendering rules of one engine."""

    name: DialectName

    def literal(self, value: object) -> str:
        """A constant from a definition (filters are data, so values are rendered, never concatenated raw)."""
        if isinstance(value, bool):
            return "TRUE" if value else "FALSE"
        if isinstance(value, int):
            return str(value)
        if isinstance(value, float):
            if not math.isfinite(value):
                raise ValueError(f"cannot render non-finite number {value!r} as SQL")
            return repr(value)
        if isinstance(value, str):
            escaped = value.replace("'", "''")
            if self.name == "snowflake":  # Snowflake string literals treat backslash as an escape
                escaped = escaped.replace("\\", "\\\\")
            return f"'{escaped}'"
        if isinstance(value, datetime):
            return self.timestamp(value)
        raise TypeError(f"no SQL literal for {type(value).__name__}")

    def timestamp(self, value: datetime) -> str:
        """Naive-UTC timestamp literal with microseconds (aware values must be converted before)."""
        if value.tzinfo is not None:
            raise ValueError("timestamp literals take naive UTC datetimes")
        return f"TIMESTAMP '{value.isoformat(sep=' ', timespec='microseconds')}'"

    def minus_seconds(self, expr: str, seconds: int) -> str:
        """``expr - seconds`` for a timestamp expression."""
        if self.name == "snowflake":
            return f"DATEADD(second, {-int(seconds)}, {expr})"
        return f"({expr} - INTERVAL {int(seconds)} SECOND)"

    def last_value(self, value: str, condition: str, order: tuple[str, str], dtype: str) -> str:
        """Value of the newest row (by ``order`` = (time, tiebreak)) where ``condition`` holds and value is set."""
        time_col, tie_col = order
        if self.name == "snowflake":
            # ARRAY_AGG skips NULLs, so element 0 of the newest-first array is the newest non-NULL value.
            return (f"(ARRAY_AGG(CASE WHEN {condition} THEN {value} END) "
                    f"WITHIN GROUP (ORDER BY {time_col} DESC, {tie_col} DESC))[0]::{_SNOWFLAKE_TYPES[dtype]}")
        return f"arg_max({value}, ({time_col}, {tie_col})) FILTER (WHERE {condition} AND {value} IS NOT NULL)"


DUCKDB = Dialect("duckdb")
SNOWFLAKE = Dialect("snowflake")


def get_dialect(name: str) -> Dialect:
    """The dialect of a store's ``dialect`` attribute; unknown names are an error, not a silent default."""
    for dialect in (DUCKDB, SNOWFLAKE):
        if dialect.name == name:
            return dialect
    raise ValueError(f"unknown SQL dialect {name!r}; expected 'duckdb' or 'snowflake'")

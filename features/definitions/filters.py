"""Structured filters: ``Filter(field, op, value)``, never free SQL strings.

A filter is data, so each engine can evaluate it its own way and still agree: the batch
engine renders it to SQL (features.batch.sql), the oracle and the stream engine call
``Filter.matches`` on one event. Comparisons follow SQL three-valued logic: anything
compared with a missing value is false, so ``!=`` and ``not_in`` never match NULL.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, model_validator

from features.definitions.names import Name

Op = Literal["==", "!=", "<", "<=", ">", ">=", "in", "not_in", "is_null", "not_null"]
Scalar = str | bool | int | float

SET_OPS = frozenset({"in", "not_in"})
NULL_OPS = frozenset({"is_null", "not_null"})
ORDER_OPS = frozenset({"<", "<=", ">", ">="})

_COMPARE = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def is_missing(value: Any) -> bool:
    """None, NaN and pandas NA/NaT all mean NULL (the oracle hands pandas values in)."""
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN, NaT and pd.NA are not equal to themselves
    except TypeError:  # pd.NA raises on bool()
        return True


class Filter(BaseModel):
    """One condition on a source column; an aggregation ANDs a tuple of them.

    ``Filter("txn_type", "==", "withdrawal")``, ``Filter("amount", ">=", 1000)``,
    ``Filter("change_type", "in", ["password", "2fa"])``, ``Filter("counterparty_id", "not_null")``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    field: Name
    op: Op
    value: Scalar | tuple[Scalar, ...] | None = None

    def __init__(self, field: str | None = None, op: str | None = None, value: Any = None, /, **data: Any) -> None:
        # Positional form for readable catalogs; keyword form for model_validate/JSON round trips.
        if field is not None:
            data.setdefault("field", field)
        if op is not None:
            data.setdefault("op", op)
        if value is not None:
            data.setdefault("value", tuple(value) if isinstance(value, list | set | frozenset) else value)
        super().__init__(**data)

    @model_validator(mode="after")
    def _value_fits_op(self) -> Filter:
        if self.op in NULL_OPS:
            if self.value is not None:
                raise ValueError(f"filter on {self.field!r}: op {self.op!r} takes no value")
            return self
        if self.value is None:
            raise ValueError(f"filter on {self.field!r}: op {self.op!r} needs a value (use is_null for NULL)")
        values = self.values
        if self.op in SET_OPS:
            if not isinstance(self.value, tuple) or not values:
                raise ValueError(f"filter on {self.field!r}: op {self.op!r} needs a non-empty list of values")
        elif isinstance(self.value, tuple):
            raise ValueError(f"filter on {self.field!r}: op {self.op!r} needs one value, not a list")
        for v in values:
            if isinstance(v, float) and not math.isfinite(v):
                raise ValueError(f"filter on {self.field!r}: value must be finite, got {v}")
        if self.op in ORDER_OPS and isinstance(self.value, bool):
            raise ValueError(f"filter on {self.field!r}: op {self.op!r} does not apply to booleans")
        return self

    @property
    def values(self) -> tuple[Scalar, ...]:
        """The comparison values as a tuple (one element for scalar ops, none for null tests)."""
        if self.value is None:
            return ()
        return self.value if isinstance(self.value, tuple) else (self.value,)

    def matches(self, row: Mapping[str, Any]) -> bool:
        """Evaluate on one event (a mapping of column -> value): the Python semantics of the filter."""
        value = row.get(self.field)
        missing = is_missing(value)
        if self.op == "is_null":
            return missing
        if self.op == "not_null":
            return not missing
        if missing:
            return False
        if self.op == "in":
            return value in self.values
        if self.op == "not_in":
            return value not in self.values
        return bool(_COMPARE[self.op](value, self.value))

    def describe(self) -> str:
        """Human-readable form for plans and `features describe`."""
        if self.op in NULL_OPS:
            return f"{self.field} {self.op.replace('_', ' ')}"
        shown = list(self.values) if self.op in SET_OPS else self.value
        return f"{self.field} {self.op.replace('_', ' ')} {shown!r}"


def matches_all(filters: tuple[Filter, ...], row: Mapping[str, Any]) -> bool:
    """AND of the filters (an empty tuple matches everything)."""
    return all(f.matches(row) for f in filters)

"""Filters as Python source: ``Filter.matches`` semantics inlined into the stream engine's generated code.

``Filter.matches`` takes a mapping and re-reads the pydantic model on every call; the stream
engine evaluates every filter of every aggregation for every event, so ``streaming.compiled_plan``
writes each group's filters into one generated function as plain comparisons. This module owns
the source text of a filter; its property test compiles that text and checks it against
``Filter.matches``, so the generated code is held to the same truth.

Conventions of the generated code: the value of column ``x`` is the local ``c_x`` and whether it
is present (not None/NaN/NA, see ``is_missing``) is the local ``p_x``. SQL three-valued logic: any
comparison with a missing value is false.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from features.definitions.filters import Filter, is_missing

# Names the generated code refers to: types whose values are never missing unless None (no ``is_missing`` call)
NAMESPACE: dict[str, Any] = {"_PLAIN": frozenset({str, int, bool}), "_is_missing": is_missing}

_COMPARISONS = frozenset({"==", "!=", "<", "<=", ">", ">="})


def present_source(column: str) -> str:
    """Expression: ``c_<column>`` is not missing. None, float NaN, then ``is_missing`` only for exotic types
    (numpy scalars, pandas NA/NaT: the oracle's frames), so the worker's str/int/bool/float values skip the call."""
    v = f"c_{column}"
    return (f"({v} is not None and ({v} == {v} if type({v}) is float "
            f"else type({v}) in _PLAIN or not _is_missing({v})))")


def filter_source(flt: Filter) -> str:
    """Expression equivalent to ``flt.matches`` over the locals ``c_<field>`` / ``p_<field>``."""
    v, p, op = f"c_{flt.field}", f"p_{flt.field}", flt.op
    if op == "is_null":
        return f"not {p}"
    if op == "not_null":
        return p
    if op in _COMPARISONS:
        return f"({p} and {v} {op} {flt.value!r})"
    if op == "in":
        return f"({p} and {v} in {flt.values!r})"
    if op == "not_in":
        return f"({p} and {v} not in {flt.values!r})"
    raise ValueError(f"filter on {flt.field!r}: unknown op {op!r}")


def where_source(filters: Sequence[Filter]) -> str:
    """AND of the filters as one expression ("True" for none)."""
    return " and ".join(filter_source(f) for f in filters) or "True"

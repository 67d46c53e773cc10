"""Compiled filters must mean exactly what ``Filter.matches`` means, NULLs and NaN included.

The predicates are compiled from the same source text the stream engine's generated code inlines."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from features.definitions.filters import Filter
from streaming.compiled_filters import NAMESPACE, present_source, where_source

FIELDS = ("a", "b")
scalar = st.one_of(st.none(), st.just(math.nan), st.booleans(), st.integers(-3, 3), st.sampled_from([0.5, 2.0]),
                   st.sampled_from(["x", "y"]))
value = st.one_of(st.booleans(), st.integers(-3, 3), st.sampled_from([0.5, 2.0, "x", "y"]))


@st.composite
def filters(draw: st.DrawFn) -> Filter:
    field = draw(st.sampled_from(FIELDS))
    op = draw(st.sampled_from(["==", "!=", "<", "<=", ">", ">=", "in", "not_in", "is_null", "not_null"]))
    if op in ("is_null", "not_null"):
        return Filter(field, op)
    if op in ("in", "not_in"):
        return Filter(field, op, draw(st.lists(value, min_size=1, max_size=3)))
    if op in ("<", "<=", ">", ">="):
        return Filter(field, op, draw(st.one_of(st.integers(-3, 3), st.sampled_from([0.5, 2.0]))))
    return Filter(field, op, draw(value))


def compile_all(filters: Sequence[Filter]) -> Callable[[Any, Any], bool]:
    """A predicate over the columns ``a`` and ``b``, written the way ``streaming.compiled_plan`` writes them."""
    source = "\n".join(["def predicate(c_a, c_b):", f"    p_a = {present_source('a')}",
                        f"    p_b = {present_source('b')}", f"    return {where_source(filters)}"])
    namespace = dict(NAMESPACE)
    exec(source, namespace)
    return namespace["predicate"]  # type: ignore[no-any-return]


def _safe(flt: Filter, row: dict) -> bool | str:
    try:
        return flt.matches(row)
    except TypeError:  # ordering a str against a number: both sides must fail the same way
        return "TypeError"


@given(flt=filters(), a=scalar, b=scalar)
def test_compiled_filter_equals_filter_matches(flt: Filter, a: object, b: object) -> None:
    row = {"a": a, "b": b}
    predicate = compile_all([flt])
    try:
        got: bool | str = predicate(a, b)
    except TypeError:
        got = "TypeError"
    assert got == _safe(flt, row)


@given(fs=st.lists(filters(), max_size=3), a=st.integers(-3, 3), b=st.sampled_from(["x", "y", None]))
def test_compile_all_is_the_and_of_its_filters(fs: list[Filter], a: int, b: str | None) -> None:
    fs = [f for f in fs if f.field == "b" or not isinstance(f.value, str | tuple)]
    row = {"a": a, "b": b}
    try:
        expected: bool | str = all(f.matches(row) for f in fs)
    except TypeError:
        expected = "TypeError"
    try:
        got: bool | str = compile_all(fs)(a, b)
    except TypeError:
        got = "TypeError"
    assert got == expected

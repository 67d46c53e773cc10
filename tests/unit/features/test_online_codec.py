"""Per-dtype encoding of online values: exact round trips, NaN and null as missing."""

from __future__ import annotations

import math

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from features.online.codec import decode_value, encode_column
from riskpipe.errors import UsageError


def _round_trip(values: list, dtype: str, arrow_type: pa.DataType) -> list:
    encoded = encode_column(pa.table({"v": pa.array(values, arrow_type)}), "v", dtype, "test")
    return [decode_value(None if e is None else e.encode(), dtype) for e in encoded]


@given(st.lists(st.floats(allow_nan=False) | st.none(), max_size=50))
def test_floats_round_trip_exactly(values: list) -> None:
    assert _round_trip(values, "float64", pa.float64()) == values


@given(st.lists(st.integers(min_value=-(2**63), max_value=2**63 - 1) | st.none(), max_size=50))
def test_int64_round_trips_exactly_including_extremes(values: list) -> None:
    assert _round_trip(values, "int64", pa.int64()) == values


@given(st.lists(st.text() | st.none(), max_size=20), st.lists(st.booleans() | st.none(), max_size=20))
def test_strings_and_bools_round_trip(strings: list, bools: list) -> None:
    assert _round_trip(strings, "string", pa.string()) == strings
    assert _round_trip(bools, "bool", pa.bool_()) == bools


def test_nan_is_stored_as_missing_and_ints_are_cast_to_the_declared_dtype() -> None:
    assert _round_trip([math.nan, 1.0], "float64", pa.float64()) == [None, 1.0]
    assert _round_trip([1, 2], "float64", pa.int64()) == [1.0, 2.0]


def test_uncastable_values_name_the_column() -> None:
    with pytest.raises(UsageError, match="column 'v'"):
        encode_column(pa.table({"v": ["x"]}), "v", "int64", "test")

"""Schema rules at the offline boundary: naive-UTC timestamps, group tables, TTL, identifiers."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd
import pyarrow as pa
import pytest

from features.offline.arrow_utils import concrete_schema, normalize_timestamps, to_arrow
from features.offline.base import group_schema, naive_utc
from features.testing import stub_group
from features.types import group_table, ttl_micros
from riskpipe.errors import UsageError


def test_aware_and_nanosecond_timestamps_become_naive_utc_microseconds() -> None:
    aware = pa.array([datetime(2024, 1, 1, 3, 0, tzinfo=timezone(timedelta(hours=3)))], pa.timestamp("ns", "UTC"))
    out = normalize_timestamps(pa.table({"t": aware, "n": [1]}))
    assert out.schema.field("t").type == pa.timestamp("us")
    assert out.column("t").to_pylist() == [datetime(2024, 1, 1, 0, 0)]
    assert naive_utc(datetime(2024, 1, 1, 3, 0, tzinfo=timezone(timedelta(hours=3)))) == datetime(2024, 1, 1)


def test_pandas_frames_are_accepted_without_their_index() -> None:
    table = to_arrow(pd.DataFrame({"a": [1, 2]}, index=[7, 8]))
    assert table.column_names == ["a"]


def test_group_schema_and_table_name_follow_the_convention() -> None:
    group = stub_group("txn_1h", "account_id", version=3, amount="float64", n="int64", c="string", b="bool")
    assert group_table(group) == "fg_txn_1h_v3"
    schema = group_schema(group)
    assert schema.names == ["account_id", "event_time", "created_at", "amount", "n", "c", "b"]
    assert [str(t) for t in schema.types] == [
        "string",
        "timestamp[us]",
        "timestamp[us]",
        "double",
        "int64",
        "string",
        "bool",
    ]


@pytest.mark.parametrize(
    ("group", "message"),
    [
        (stub_group("g", "account_id", event_time="int64"), "clash with key columns"),
        (stub_group("g", "account_id", x="decimal"), "dtype 'decimal'"),
        (stub_group("g-1", "account_id", x="int64"), "not a valid identifier"),
        (stub_group("g", "account_id", version=0, x="int64"), "version must be a positive int"),
    ],
)
def test_invalid_groups_are_usage_errors(group, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        group_table(group)
        group_schema(group)


def test_ttl_zero_means_never_expires() -> None:
    assert ttl_micros(stub_group("g", "k", timedelta(0))) is None
    assert ttl_micros(stub_group("g", "k", timedelta(seconds=2))) == 2_000_000


def test_all_null_first_batch_columns_are_stored_as_strings() -> None:
    assert concrete_schema(pa.schema([("a", pa.null()), ("b", pa.int64())])).types == [pa.string(), pa.int64()]

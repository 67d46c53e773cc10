"""PIT retrieval against the naive oracle, property-based, on a real DuckDB store.

The same generated cases also run the *Snowflake* SQL: fakesnow cannot parse
``ASOF JOIN ... MATCH_CONDITION``, so the generated Snowflake query is transpiled with sqlglot
and its MATCH_CONDITION moved into DuckDB's ASOF ON clause (same semantics: Snowflake null-pads
unmatched left rows). That checks the Snowflake projection, TTL arithmetic and ordering.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta

import pandas as pd
import pyarrow as pa
import pytest
import sqlglot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.offline import DuckDBOfflineStore
from features.offline.pit_sql import ROW_COL, snowflake_pit_sql
from features.pit import get_training_frame, plan_pit
from features.pit_oracle import oracle_training_frame
from features.testing import stub_group
from riskpipe.errors import UsageError

pytestmark = pytest.mark.integration

T0 = datetime(2024, 3, 1, 12, 0)
ACCOUNTS = ["a", "b", "c", "zz"]  # "zz" never gets features
DEVICES = ["d1", "d2"]
REFS = ["acct:amount", "acct:count", "dev:seen", "dev:label"]


def _groups(acct_ttl: int, dev_ttl: int) -> dict[str, object]:
    return {
        "acct": stub_group("acct", "account_id", timedelta(minutes=acct_ttl), amount="float64", count="int64"),
        "dev": stub_group("dev", "device_id", timedelta(minutes=dev_ttl), seen="bool", label="string"),
    }


minute = st.integers(min_value=0, max_value=12)  # a small grid, so ties and TTL edges are common
acct_rows = st.lists(st.tuples(st.sampled_from(ACCOUNTS[:3]), minute, st.integers(-5, 5)), max_size=25)
dev_rows = st.lists(st.tuples(st.sampled_from(DEVICES), minute, st.booleans()), max_size=15)
label_rows = st.lists(
    st.tuples(st.sampled_from(ACCOUNTS), st.sampled_from([*DEVICES, "d9"]), minute), min_size=1, max_size=25
)


def _history(rows: list[tuple[str, int, object]], key: str, make) -> pd.DataFrame:
    frame = pd.DataFrame(
        [{key: k, "event_time": T0 + timedelta(minutes=m), **make(i, v)} for i, (k, m, v) in enumerate(rows)],
        columns=[key, "event_time", *make(0, 0).keys()],
    )
    return frame


def _acct(i: int, v: object) -> dict[str, object]:
    return {"amount": float(v) / 2, "count": int(v)}  # type: ignore[arg-type]


def _dev(i: int, v: object) -> dict[str, object]:
    return {"seen": bool(v), "label": f"v{i}"}


def _same(a: object, b: object) -> bool:
    missing = [x is None or (isinstance(x, float) and math.isnan(x)) or x is pd.NA for x in (a, b)]
    if any(missing):
        return all(missing)
    return a == b


def _assert_frames_equal(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert list(got.columns) == list(want.columns)
    assert len(got) == len(want)
    for col in want.columns:
        for i, (g, w) in enumerate(zip(got[col].tolist(), want[col].tolist(), strict=True)):
            assert _same(g, w), f"row {i} column {col}: got {g!r}, oracle {w!r}"


def _write(store: DuckDBOfflineStore, group, frame: pd.DataFrame, split: int) -> pd.DataFrame:
    """Write in two batches (dedupe must hold across and within batches); return what the store keeps."""
    store.append_features(group, frame.iloc[:split])
    store.append_features(group, frame.iloc[split:])
    return frame.drop_duplicates([group.entity.join_key, "event_time"], keep="first")


def _snowflake_sql_on_duckdb(store: DuckDBOfflineStore, labels: pa.Table, refs, groups) -> pd.DataFrame:
    plan, outputs = plan_pit(refs, groups)
    sql = sqlglot.transpile(snowflake_pit_sql("lbl", plan, "event_time"), read="snowflake", write="duckdb")[0]
    sql, n = re.subn(
        r"ASOF JOIN (\(.*?\) AS f\d+) MATCH_CONDITION \((.*?)\) ON (.*?)(?= ASOF|$)",
        r"ASOF LEFT JOIN \1 ON \3 AND \2",
        sql,
    )
    assert n == len(plan)
    con = store._con  # the test reaches in to run foreign SQL on the same data
    con.register("lbl", labels.append_column(ROW_COL, pa.array(range(labels.num_rows), pa.int64())))
    features = con.sql(sql).to_arrow_table().to_pandas().sort_values(ROW_COL).reset_index(drop=True)
    assert features[ROW_COL].tolist() == list(range(labels.num_rows))
    return pd.concat([labels.to_pandas(), features[outputs]], axis=1)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    acct=acct_rows,
    dev=dev_rows,
    labels=label_rows,
    acct_ttl=st.sampled_from([0, 1, 3, 6]),
    dev_ttl=st.sampled_from([0, 2]),
    split=st.integers(0, 25),
)
def test_pit_matches_oracle(acct, dev, labels, acct_ttl, dev_ttl, split) -> None:
    groups = _groups(acct_ttl, dev_ttl)
    store = DuckDBOfflineStore()
    try:
        history = {
            "acct": _write(store, groups["acct"], _history(acct, "account_id", _acct), split),
            "dev": _write(store, groups["dev"], _history(dev, "device_id", _dev), split),
        }
        frame = pd.DataFrame(
            [
                {"account_id": a, "device_id": d, "event_time": T0 + timedelta(minutes=m), "label": i % 2}
                for i, (a, d, m) in enumerate(labels)
            ]
        ).rename(columns={"label": "is_fraud"})
        want = oracle_training_frame(frame, REFS, groups, history)

        got = get_training_frame(store, frame, REFS, groups.values())
        _assert_frames_equal(got.reset_index(drop=True), want)

        got_arrow = get_training_frame(store, pa.Table.from_pandas(frame), REFS, groups)
        assert isinstance(got_arrow, pa.Table)
        _assert_frames_equal(got_arrow.to_pandas(), want)

        snow = _snowflake_sql_on_duckdb(store, pa.Table.from_pandas(frame), REFS, groups)
        _assert_frames_equal(snow, want)
    finally:
        store.close()


def test_duplicate_labels_stay_and_order_and_index_are_kept() -> None:
    group = stub_group("g", "account_id", timedelta(0), x="int64")
    store = DuckDBOfflineStore()
    store.append_features(group, pd.DataFrame({"account_id": ["a"], "event_time": [T0], "x": [7]}))
    labels = pd.DataFrame(
        {"account_id": ["b", "a", "a", "b", "a"], "event_time": [T0, T0, T0, T0 - timedelta(1), T0]},
        index=[50, 40, 30, 20, 10],
    )
    out = get_training_frame(store, labels, ["g:x"], [group])
    assert list(out.index) == [50, 40, 30, 20, 10]
    assert out["x"].tolist()[1:3] == [7, 7] and out["x"].isna().tolist() == [True, False, False, True, False]


def test_tz_aware_labels_are_compared_in_utc() -> None:
    group = stub_group("g", "account_id", timedelta(0), x="int64")
    store = DuckDBOfflineStore()
    store.append_features(group, pd.DataFrame({"account_id": ["a"], "event_time": [T0], "x": [1]}))
    just_before = pd.Timestamp(T0 - timedelta(seconds=1)).tz_localize("UTC").tz_convert("Asia/Tokyo")
    at = pd.Timestamp(T0).tz_localize("UTC").tz_convert("America/New_York")
    labels = pd.DataFrame({"account_id": ["a", "a"], "event_time": [just_before, at]})
    assert get_training_frame(store, labels, ["g:x"], [group])["x"].isna().tolist() == [True, False]


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (pd.DataFrame({"account_id": ["a"]}), "no 'event_time' column"),
        (pd.DataFrame({"event_time": [T0]}), "no 'account_id' column"),
        (pd.DataFrame({"account_id": ["a"], "event_time": [None]}, dtype=object), "event_time"),
        (pd.DataFrame({"account_id": ["a"], "event_time": [T0], "x": [1]}), "collide"),
        ("not a frame", "expected a pyarrow.Table or pandas.DataFrame"),
    ],
)
def test_bad_labels_are_usage_errors(labels, message: str) -> None:
    group = stub_group("g", "account_id", x="int64")
    store = DuckDBOfflineStore()
    store.append_features(group, pd.DataFrame({"account_id": ["a"], "event_time": [T0], "x": [1]}))
    with pytest.raises(UsageError, match=message):
        get_training_frame(store, labels, ["g:x"], [group])


def test_missing_group_table_is_a_usage_error() -> None:
    group = stub_group("never_written", "account_id", x="int64")
    labels = pd.DataFrame({"account_id": ["a"], "event_time": [T0]})
    with pytest.raises(UsageError, match="fg_never_written_v1 does not exist"):
        get_training_frame(DuckDBOfflineStore(), labels, ["never_written:x"], [group])

"""The naive oracle against hand-computed answers: it is the truth, so it is checked by hand first."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from features.definitions import ACCOUNT, Aggregation, Filter, Source, WindowedFeatureGroup
from features.oracle import oracle_at_points, oracle_range, with_first_seen

T0 = datetime(2024, 3, 1, 12, 0, 0)
W = timedelta(seconds=60)
SOURCE = Source(
    name="toy", topic="toy", table="toy",
    columns={"event_id": "string", "event_time": "timestamp", "account_id": "string", "amount": "float64",
             "kind": "string", "device": "string"},
).with_first_seen("is_new_device", ("account_id", "device"), timedelta(seconds=100))


def group(*aggs: Aggregation) -> WindowedFeatureGroup:
    return WindowedFeatureGroup(name="toy", version=1, entity=ACCOUNT, ttl=W, description="d", owner="o",
                                source=SOURCE, aggregations=aggs)


def events(*rows: tuple[str, int, str | None, float | None, str | None, str | None]) -> pd.DataFrame:
    """(event_id, seconds after T0, account, amount, kind, device)."""
    return pd.DataFrame(
        [{"event_id": e, "event_time": T0 + timedelta(seconds=s), "account_id": a, "amount": x, "kind": k,
          "device": d} for e, s, a, x, k, d in rows])


def at(g: WindowedFeatureGroup, ev: pd.DataFrame, account: str, seconds: float) -> dict[str, Any]:
    points = pd.DataFrame({"account_id": [account], "as_of": [T0 + timedelta(seconds=seconds)]})
    return oracle_at_points(g, ev, points).iloc[0].to_dict()


ALL = group(
    Aggregation(name="c", function="count", windows=(W,)),
    Aggregation(name="s", function="sum", column="amount", windows=(W,)),
    Aggregation(name="m", function="mean", column="amount", windows=(W,)),
    Aggregation(name="lo", function="min", column="amount", windows=(W,)),
    Aggregation(name="hi", function="max", column="amount", windows=(W,)),
    Aggregation(name="d", function="count_distinct", column="kind", windows=(W,)),
    Aggregation(name="l", function="last", column="kind", windows=(W,)),
)


def test_window_is_open_below_and_closed_at_the_as_of_time() -> None:
    ev = events(("e1", 0, "a", 1.0, "x", "d"), ("e2", 60, "a", 2.0, "y", "d"))
    at_60 = at(ALL, ev, "a", 60)  # covers (0, 60]: e1 at exactly t - W is out, e2 at exactly t is in
    assert (at_60["c_1m"], at_60["s_1m"], at_60["l_1m"]) == (1, 2.0, "y")
    just_before = at(ALL, ev, "a", 59.999999)  # covers (-0.000001, 59.999999]: only e1
    assert (just_before["c_1m"], just_before["s_1m"], just_before["l_1m"]) == (1, 1.0, "x")


def test_empty_window_values() -> None:
    ev = events(("e1", 0, "a", 1.0, "x", "d"))
    row = at(ALL, ev, "a", 500)
    assert (row["c_1m"], row["s_1m"], row["d_1m"]) == (0, 0.0, 0)
    assert row["m_1m"] is None and row["lo_1m"] is None and row["hi_1m"] is None and row["l_1m"] is None
    assert at(ALL, ev, "nobody", 0)["c_1m"] == 0


def test_nulls_are_skipped_by_value_aggregations_and_last() -> None:
    ev = events(("e1", 1, "a", 4.0, "x", "d"), ("e2", 2, "a", None, None, "d"), ("e3", 3, "a", 2.0, "x", "d"))
    row = at(ALL, ev, "a", 10)
    assert row["c_1m"] == 3 and row["s_1m"] == 6.0 and row["m_1m"] == 3.0
    assert (row["lo_1m"], row["hi_1m"], row["d_1m"]) == (2.0, 4.0, 1)
    ev_last_null = events(("e1", 1, "a", 4.0, "x", "d"), ("e2", 2, "a", None, None, "d"))
    assert at(ALL, ev_last_null, "a", 10)["l_1m"] == "x"


def test_last_breaks_time_ties_by_the_larger_event_id() -> None:
    ev = events(("e2", 5, "a", 1.0, "e2", "d"), ("e10", 5, "a", 1.0, "e10", "d"),
                ("e9", 5, "a", 1.0, "e9", "d"))
    assert at(ALL, ev, "a", 5)["l_1m"] == "e9"  # "e9" > "e2" > "e10" as strings


def test_filters_apply_per_aggregation() -> None:
    g = group(Aggregation(name="xs", function="sum", column="amount", windows=(W,), where=(Filter("kind", "==", "x"),)),
              Aggregation(name="notx", function="count", windows=(W,), where=(Filter("kind", "!=", "x"),)),
              Aggregation(name="nokind", function="count", windows=(W,), where=(Filter("kind", "is_null"),)))
    ev = events(("e1", 1, "a", 4.0, "x", "d"), ("e2", 2, "a", 1.0, None, "d"), ("e3", 3, "a", 2.0, "y", "d"))
    row = at(g, ev, "a", 10)
    assert (row["xs_1m"], row["notx_1m"], row["nokind_1m"]) == (4.0, 1, 1)


def test_first_seen_uses_an_exclusive_lookback_and_event_id_ties() -> None:
    ev = events(
        ("e1", 0, "a", 1.0, None, "d1"),    # first d1 for a -> new
        ("e2", 50, "a", 1.0, None, "d1"),   # d1 seen 50 s ago (inside 100 s) -> not new
        ("e3", 150, "a", 1.0, None, "d1"),  # previous d1 at 50 = exactly 150 - 100, outside -> new
        ("e4", 150, "b", 1.0, None, "d1"),  # other account -> new
        ("e6", 200, "a", 1.0, None, "d2"),  # tie at 200: e5 < e6, so e5 is first
        ("e5", 200, "a", 1.0, None, "d2"),
        ("e7", 210, "a", 1.0, None, None),  # NULL key -> NULL flag
    )
    flags = {r["event_id"]: r["is_new_device"] for r in with_first_seen(SOURCE, ev)}
    assert flags == {"e1": True, "e2": False, "e3": True, "e4": True, "e5": True, "e6": False, "e7": None}


def test_range_has_one_row_per_event_in_the_half_open_range() -> None:
    g = group(Aggregation(name="c", function="count", windows=(W,)))
    ev = events(("e1", 0, "a", 1.0, None, "d"), ("e2", 0, "a", 1.0, None, "d"), ("e3", 30, "a", 1.0, None, "d"),
                ("e4", 60, "b", 1.0, None, "d"), ("e5", 5, None, 1.0, None, "d"))
    out = oracle_range(g, ev, T0, T0 + timedelta(seconds=60))
    assert out[["account_id", "c_1m"]].values.tolist() == [["a", 2], ["a", 3]]  # ties collapse; e4 at end is out

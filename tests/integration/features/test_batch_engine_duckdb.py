"""Batch engine on real DuckDB against the naive oracle: property-based, plus materialization.

The property test draws random groups (every aggregation kind, random filters of every op,
windows 1 s..2 min, a first-seen flag) and random events (ties, NULLs, duplicate devices),
then compares the generated SQL's answer with the oracle's at random points, at points
exactly on window boundaries, and at every event of a range (the backfill path).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.batch import compute_at_points, compute_group, compute_range
from features.batch.synthetic import synthetic_logins, synthetic_transactions
from features.definitions import ACCOUNT, Aggregation, Filter, Source, WindowedFeatureGroup, get_group
from features.offline import get_offline_store
from features.offline.base import OfflineStore
from features.oracle import mismatches, oracle_at_points, oracle_range
from riskpipe.errors import UsageError
from riskpipe.settings import Settings

pytestmark = pytest.mark.integration

T0 = datetime(2024, 5, 1, 12, 0, 0)
WINDOWS = [timedelta(seconds=s) for s in (1, 10, 60, 120)]
ARROW = {"string": pa.string(), "float64": pa.float64(), "bool": pa.bool_(), "timestamp": pa.timestamp("us")}
COLUMNS = {"event_id": "string", "event_time": "timestamp", "account_id": "string", "amount": "float64",
           "kind": "string", "flag": "bool", "device": "string"}
SCHEMA = pa.schema([(name, ARROW[dtype]) for name, dtype in COLUMNS.items()])


@pytest.fixture
def store(settings: Settings) -> Any:
    s = get_offline_store(settings)
    yield s
    s.close()


def source_for(table: str) -> Source:
    return Source(name="prop", topic="prop", table=table, columns=COLUMNS).with_first_seen(
        "is_new_device", ("account_id", "device"), timedelta(seconds=30))


# ---- strategies ------------------------------------------------------------------------------------------

VALUES: dict[str, list[Any]] = {
    "amount": [0.0, 1.5, 10.0, -2.0], "kind": ["x", "y", "zz"], "device": ["d1", "d2"],
    "flag": [True, False], "is_new_device": [True, False], "account_id": ["a", "b"],
}
OPS: dict[str, list[str]] = {
    "amount": ["==", "!=", "<", "<=", ">", ">=", "in", "not_in", "is_null", "not_null"],
    "kind": ["==", "!=", "<", ">=", "in", "not_in", "is_null", "not_null"],
    "device": ["==", "!=", "in", "not_in", "is_null", "not_null"],
    "flag": ["==", "!=", "in", "is_null", "not_null"],
    "is_new_device": ["==", "!=", "is_null", "not_null"],
    "account_id": ["==", "not_in"],
}
COLUMN_FOR = {
    "count": [None], "sum": ["amount"], "mean": ["amount"], "min": ["amount"], "max": ["amount"],
    "count_distinct": ["kind", "device", "amount", "flag", "account_id", "is_new_device"],
    "last": ["kind", "amount", "flag", "device", "is_new_device"],
}


@st.composite
def filters(draw: st.DrawFn) -> Filter:
    field = draw(st.sampled_from(sorted(OPS)))
    op = draw(st.sampled_from(OPS[field]))
    if op in ("is_null", "not_null"):
        return Filter(field, op)
    if op in ("in", "not_in"):
        return Filter(field, op, draw(st.lists(st.sampled_from(VALUES[field]), min_size=1, max_size=2, unique=True)))
    return Filter(field, op, draw(st.sampled_from(VALUES[field])))


@st.composite
def aggregations(draw: st.DrawFn, index: int) -> Aggregation:
    function = draw(st.sampled_from(sorted(COLUMN_FOR)))
    return Aggregation(
        name=f"f{index}", function=function, column=draw(st.sampled_from(COLUMN_FOR[function])),
        windows=tuple(draw(st.lists(st.sampled_from(WINDOWS), min_size=1, max_size=3, unique=True))),
        where=tuple(draw(st.lists(filters(), max_size=2))),
    )


def times() -> st.SearchStrategy[datetime]:
    """A 5-second grid (ties and gaps of exactly a window or the 30 s lookback are common), or half past."""
    return st.builds(lambda step, half: T0 + timedelta(seconds=5 * step, microseconds=500_000 * half),
                     st.integers(0, 30), st.sampled_from([0, 0, 0, 1]))


@st.composite
def event_rows(draw: st.DrawFn) -> list[dict[str, Any]]:
    ids = draw(st.lists(st.integers(0, 999), max_size=30, unique=True))
    return [{
        "event_id": f"e{i}",  # string order differs from numeric order: "e10" < "e9"
        "event_time": draw(times()),
        "account_id": draw(st.sampled_from(["a", "a", "b", None])),
        "amount": draw(st.one_of(st.none(), st.sampled_from([0.0, 1.5, 10.0, -2.0]),
                                 st.floats(-1e4, 1e4, allow_nan=False).map(lambda v: round(v, 3)))),
        "kind": draw(st.sampled_from(["x", "y", "zz", None])),
        "flag": draw(st.sampled_from([True, False, None])),
        "device": draw(st.sampled_from(["d1", "d2", "d3", None])),
    } for i in ids]


def load(store: OfflineStore, table: str, rows: list[dict[str, Any]]) -> pd.DataFrame:
    store.execute(f"DROP TABLE IF EXISTS {table}")
    arrow = pa.Table.from_pylist(rows, schema=SCHEMA)
    store.append(table, arrow)
    return arrow.to_pandas()


# ---- the property ------------------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                    HealthCheck.too_slow])
@given(data=st.data())
def test_batch_sql_equals_the_oracle(store: OfflineStore, unique: str, data: st.DataObject) -> None:
    table = f"ev_{unique.replace('-', '_')}"
    n_aggs = data.draw(st.integers(1, 4), label="aggregations")
    group = WindowedFeatureGroup(
        name="prop", version=1, entity=ACCOUNT, ttl=timedelta(hours=1), description="d", owner="o",
        source=source_for(table), aggregations=tuple(data.draw(aggregations(i)) for i in range(n_aggs)),
    )
    rows = data.draw(event_rows(), label="events")
    events = load(store, table, rows)

    # random points, plus points exactly on the boundaries of the events' windows (t and t + W)
    points = data.draw(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), times()), min_size=1, max_size=8))
    for row in rows[:6]:
        if row["account_id"] is not None:
            shift = data.draw(st.sampled_from([timedelta(0), *group.aggregations[0].windows]))
            points.append((row["account_id"], row["event_time"] + shift))
    frame = pd.DataFrame(points, columns=["account_id", "as_of"])
    got = compute_at_points(store, group, frame)
    assert mismatches(got, oracle_at_points(group, events, frame)) == []

    start = T0 + timedelta(seconds=data.draw(st.integers(0, 100), label="range start"))
    end = start + timedelta(seconds=data.draw(st.integers(1, 100), label="range length"))
    assert mismatches(compute_range(store, group, start, end), oracle_range(group, events, start, end)) == []


# ---- materialization -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("reverse", [False, True], ids=["inserted-in-order", "inserted-reversed"])
@pytest.mark.parametrize(("win", "lose"), [("aaa", "zzz"), ("zzz", "aaa")])
def test_ties_and_exact_boundaries(store: OfflineStore, reverse: bool, win: str, lose: str) -> None:
    """Deterministic companions of the property: the cases a random draw hits only sometimes.

    Both insertion orders and both value orders, so "last" cannot pass by picking whichever tied
    row the scan met first, or the larger/smaller value.
    """
    table = "ev_boundaries"
    w = timedelta(seconds=10)

    def make(*aggs: Aggregation) -> WindowedFeatureGroup:
        return WindowedFeatureGroup(name="edges", version=1, entity=ACCOUNT, ttl=w, description="d", owner="o",
                                    source=source_for(table), aggregations=aggs)

    # separate groups: the first-seen flag's window function sorts rows, which could hide a tie bug in "last"
    plain = make(Aggregation(name="last_kind", function="last", column="kind", windows=(w,)),
                 Aggregation(name="n", function="count", windows=(w,)))
    flagged = make(Aggregation(name="new", function="count", windows=(timedelta(seconds=120),),
                               where=(Filter("is_new_device", "==", True),)))
    at = [T0 + timedelta(seconds=s) for s in (0, 10, 10, 10, 40, 70)]
    rows = [{"event_id": i, "event_time": t, "account_id": "a", "amount": 1.0, "kind": k, "flag": None, "device": d}
            for i, t, k, d in (("e1", at[0], "first", "d1"), ("e10", at[1], lose, "d1"),
                               ("e9", at[2], win, "d1"), ("e2", at[3], None, "d1"),
                               ("e3", at[4], "x", "d1"),  # previous d1 exactly 30 s earlier: new again
                               ("e4", at[5], "y", "d1"))]  # previous d1 30 s earlier: new again
    events = load(store, table, rows[::-1] if reverse else rows)
    just_before = at[1] + w - timedelta(microseconds=1)
    points = pd.DataFrame({"account_id": ["a"] * 4, "as_of": [at[1], just_before, at[1] + w, at[5]]})
    got = compute_at_points(store, plain, points)
    assert mismatches(got, oracle_at_points(plain, events, points)) == []
    assert got.column("last_kind_10s").to_pylist() == [win, win, None, "y"]  # "e9" > "e2" > "e10"
    assert got.column("n_10s").to_pylist() == [3, 3, 0, 1]  # (t - 10 s, t]: t=0 is out at 10, t=10 out at 20
    new = compute_at_points(store, flagged, points)
    assert mismatches(new, oracle_at_points(flagged, events, points)) == []
    assert new.column("new_2m").to_pylist() == [1, 1, 1, 3]


def test_compute_group_materializes_catalog_groups_idempotently(store: OfflineStore) -> None:
    txns = synthetic_transactions(400, seed=3, span=timedelta(days=2), accounts=4)
    logins = synthetic_logins(300, seed=4, span=timedelta(days=2), accounts=4)
    store.append("events_transactions", txns)
    store.append("events_logins", logins)
    start, end = datetime(2024, 1, 1, 18), datetime(2024, 1, 2, 18)
    for name, events in (("account_withdrawals", txns), ("counterparty_inbound", txns),
                         ("account_login_security", logins), ("device_sharing", logins)):
        group = get_group(name)
        assert isinstance(group, WindowedFeatureGroup)
        written = compute_group(store, group, start, end)
        again = compute_group(store, group, start, end)
        stored = store.query(f"SELECT * FROM {group.table_name} ORDER BY 1, 2")
        expected = oracle_range(group, events, start, end)
        assert written == again == stored.num_rows == len(expected) > 30
        assert stored.column_names[:3] == [group.entity.join_key, "event_time", "created_at"]
        assert mismatches(stored.drop_columns(["created_at"]), expected) == []


def test_compute_group_rewrites_only_its_range(store: OfflineStore) -> None:
    group = get_group("account_txn_velocity")
    store.append("events_transactions", synthetic_transactions(300, seed=5, span=timedelta(days=2)))
    day1, day2, day3 = datetime(2024, 1, 1), datetime(2024, 1, 2), datetime(2024, 1, 3)
    first = compute_group(store, group, day1, day2)
    second = compute_group(store, group, day2, day3)
    compute_group(store, group, day2, day3)
    count = store.query(f"SELECT count(*) AS n, min(event_time) AS lo FROM {group.table_name}").to_pylist()[0]
    assert count["n"] == first + second and count["lo"] >= day1


def test_sql_groups_run_once_per_schedule_tick(store: OfflineStore) -> None:
    logins = synthetic_logins(500, seed=6, span=timedelta(hours=5), accounts=6)
    store.append("events_logins", logins)
    group = get_group("ip_hourly")
    start, end = datetime(2024, 1, 1, 1), datetime(2024, 1, 1, 4)
    written = compute_group(store, group, start, end)
    stored = store.query(f"SELECT * FROM {group.table_name} ORDER BY event_time, ip").to_pandas()
    # independent expectation: pandas over (tick - 1h, tick] per IP
    expected = []
    for tick in pd.date_range(start, end, freq="h", inclusive="left"):
        window = logins[(logins.event_time > tick - timedelta(hours=1)) & (logins.event_time <= tick)]
        for ip, rows in sorted(window.groupby("ip")):
            expected.append((tick.to_pydatetime(), ip, rows.account_id.nunique(), len(rows), int((~rows.success).sum()),
                             float((~rows.success).mean()), rows.country.nunique()))
    got = [(r.event_time.to_pydatetime(), r.ip, r.ip_distinct_accounts_1h, r.ip_login_count_1h,
            r.ip_failed_login_count_1h, r.ip_failed_login_ratio_1h, r.ip_distinct_countries_1h)
           for r in stored.itertuples()]
    assert written == len(expected) == len(got) > 0
    assert [g[:5] for g in got] == [e[:5] for e in expected]
    assert all(abs(g[5] - e[5]) < 1e-9 and g[6] == e[6] for g, e in zip(got, expected, strict=True))
    assert stored.dtypes["ip_login_count_1h"] == "int64"


def test_engine_errors_name_what_is_wrong(store: OfflineStore) -> None:
    velocity = get_group("account_txn_velocity")
    points = pd.DataFrame({"account_id": ["a"], "as_of": [T0]})
    with pytest.raises(UsageError, match="raw table 'events_transactions' does not exist"):
        compute_at_points(store, velocity, points)
    with pytest.raises(UsageError, match="missing column 'as_of'"):
        compute_at_points(store, velocity, points.rename(columns={"as_of": "t"}))
    with pytest.raises(UsageError, match="needs a windowed group"):
        compute_at_points(store, get_group("ip_hourly"), points)
    with pytest.raises(UsageError, match="must be before end"):
        compute_group(store, velocity, T0, T0)
    assert compute_at_points(store, velocity, points.iloc[:0]).num_rows == 0

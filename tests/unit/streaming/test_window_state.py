"""The incremental window engine against the naive oracle (the truth), with hypothesis.

Small windows (seconds) and a short first-seen lookback make window edges, ties and flag
flips common; arrival order, batching and state round trips through the changelog encoding
are all drawn by hypothesis, so the property covers what the stream worker does to the engine.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import datetime, timedelta
from itertools import pairwise

import pandas as pd
import pydantic_core
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events.contracts import Transaction
from features.batch.synthetic import synthetic_logins, synthetic_transactions
from features.definitions import ACCOUNT, DEVICE, Aggregation, Filter, Source, WindowedFeatureGroup
from features.definitions.catalog import FEATURE_GROUPS
from features.oracle import mismatches, oracle_at_points
from streaming.state_table import StateTable, record_key
from streaming.window_state import (
    EntityState,
    EventRow,
    GroupPlan,
    PlanError,
    Point,
    apply,
    evaluate,
    from_us,
    to_us,
)

S = timedelta(seconds=1)
START = datetime(2024, 1, 1)
SOURCE = Source.from_event(Transaction, name="transactions").with_first_seen(
    "is_new_device", ("account_id", "device_id"), 20 * S)


class _Checkpointed:
    """States written to a table and read back, with tiny segments so that they seal, fill up, get rewritten by
    out-of-order events and demotions, and expire, and first-seen indexes go to deltas and whole records, as a hot
    entity's do in the worker."""

    def __init__(self, plan: GroupPlan) -> None:
        self.plan = plan
        self.table: dict[bytes, bytes] = {}
        self.writer = StateTable(self.table, {plan.name: plan}, segment_events=3)

    def round_trip(self, key: str, state: EntityState) -> EntityState:
        self.writer.store(key, {self.plan.name: state})
        self.writer.flush()
        recovered = StateTable(self.table, {self.plan.name: self.plan}).load(key).get(self.plan.name)
        heads = [(head, s) for head, value in self.table.items() if b"\x00" not in head
                 for s in pydantic_core.from_json(value)["groups"].values()]
        named = {record_key(head, generation) for head, s in heads for generation in EntityState.named(s)}
        assert named == {k for k in self.table if b"\x00" in k}  # every record named by a head, none left over
        recovered = recovered or EntityState(self.plan)
        # the events held, and before them at most some that memory already expired (in a segment not yet empty,
        # still stored whole): too old for any evaluation, expired again at the next update
        extra = recovered.size - state.size
        assert recovered.frags[extra:] == state.frags and recovered.ids[extra:] == state.ids
        assert all(t <= recovered.wm - self.plan.horizon_us for t in recovered.times[:extra])
        assert [i.entries for i in recovered.seen] == [i.entries for i in state.seen]
        return recovered


def _agg(name: str, function: str, column: str | None, windows: tuple[timedelta, ...], *where: Filter) -> Aggregation:
    return Aggregation(name=name, function=function, column=column, windows=windows, where=where)


ACCOUNT_GROUP = WindowedFeatureGroup(
    name="t_account", version=1, entity=ACCOUNT, ttl=timedelta(hours=1), description="test", owner="test",
    source=SOURCE,
    aggregations=(
        _agg("n", "count", None, (2 * S, 10 * S, 60 * S)),
        _agg("p2p_sum", "sum", "amount", (10 * S, 60 * S), Filter("txn_type", "==", "p2p_transfer")),
        _agg("amt_mean", "mean", "amount", (5 * S, 30 * S)),
        _agg("amt_min", "min", "amount", (5 * S,)),
        _agg("amt_max", "max", "amount", (30 * S,), Filter("amount", ">=", 2.0)),
        _agg("devices", "count_distinct", "device_id", (5 * S, 30 * S)),
        _agg("cps", "count_distinct", "counterparty_id", (30 * S,), Filter("counterparty_id", "not_null")),
        _agg("last_type", "last", "txn_type", (2 * S, 10 * S)),  # nested windows: the newest value per window
        _agg("last_cp", "last", "counterparty_id", (60 * S,)),
        _agg("new_dev", "count", None, (60 * S,), Filter("is_new_device", "==", True)),
        _agg("not_withdrawal", "count", None, (10 * S,), Filter("txn_type", "not_in", ["withdrawal", "deposit"])),
    ),
)
DEVICE_GROUP = WindowedFeatureGroup(
    name="t_device", version=1, entity=DEVICE, ttl=timedelta(hours=1), description="test", owner="test",
    source=SOURCE,
    aggregations=(
        _agg("accounts", "count_distinct", "account_id", (3 * S, 40 * S)),
        _agg("new_pairs", "count", None, (40 * S,), Filter("is_new_device", "==", True)),
        _agg("amount_sum", "sum", "amount", (7 * S,)),
    ),
)

event_st = st.fixed_dictionaries({
    "account_id": st.sampled_from(["a0", "a1", "a2"]),
    "device_id": st.sampled_from(["d0", "d1", "d2"]),
    "txn_type": st.sampled_from(["card_payment", "p2p_transfer", "withdrawal", "deposit"]),
    "amount": st.sampled_from([1.0, 2.5, 10.0, 1000.0, 0.1]),
    "counterparty_id": st.sampled_from([None, "c0", "c1"]),
    "second": st.integers(0, 90),
    "micros": st.sampled_from([0, 0, 1, 500_000, 999_999]),
})


# 0: every evaluation moves running aggregates (``slide``); None, the default: these small states are read whole
slide_from_st = st.sampled_from([0, 3, None])


def _frame(raw: list[dict]) -> pd.DataFrame:
    rows = []
    for i, r in enumerate(raw):
        rows.append({"event_id": f"e{i:03d}", "event_time": START + timedelta(seconds=r["second"],
                                                                             microseconds=r["micros"]),
                     **{k: v for k, v in r.items() if k not in ("second", "micros")}})
    return pd.DataFrame(rows)


def _run(plan: GroupPlan, frame: pd.DataFrame, order: list[int], cuts: list[int], round_trip: bool
         ) -> tuple[dict[tuple[str, int], dict], list[EventRow]]:
    """Feed events in ``order`` split at ``cuts``; return the last emitted values per point and the late rows."""
    records = frame.to_dict("records")
    checkpointed = _Checkpointed(plan)
    states: dict[str, EntityState] = {}
    out: dict[tuple[str, int], dict] = {}
    late: list[EventRow] = []
    bounds = sorted({0, len(order), *(c % (len(order) + 1) for c in cuts)})
    for a, b in pairwise(bounds):
        by_entity: dict[str, list[EventRow]] = defaultdict(list)
        for i in order[a:b]:
            rec = records[i]
            key = rec[plan.join_key]
            if key is None:
                continue
            by_entity[key].append(plan.row(to_us(rec["event_time"]), rec["event_id"], rec))
        for key, rows in by_entity.items():
            state = states.get(key) or EntityState(plan)
            result = apply(plan, state, rows)
            late.extend(result.late)
            for point in result.points:
                out[(key, point.t)] = evaluate(plan, state, point.t)
            states[key] = checkpointed.round_trip(key, state) if round_trip else state
    return out, late


def _check_against_oracle(plan: GroupPlan, frame: pd.DataFrame, out: dict, late: list[EventRow]) -> None:
    late_ids = {r.event_id for r in late}
    accepted = frame[~frame["event_id"].isin(late_ids)].reset_index(drop=True)
    key = plan.join_key
    expected_points = {(k, to_us(t)) for k, t in zip(accepted[key], accepted["event_time"], strict=True)
                       if k is not None}
    assert set(out) == expected_points  # one point per (entity, event time), nothing invented
    points = pd.DataFrame([{key: k, "as_of": from_us(t)} for k, t in sorted(out)])
    for group in plan.groups:  # a fused plan: every group's share against that group's oracle
        expected = oracle_at_points(group, accepted, points)
        got = pd.DataFrame([{key: k, "event_time": from_us(t), **out[(k, t)]} for k, t in sorted(out)],
                           columns=list(expected.columns))
        assert mismatches(got, expected) == [], group.name


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.lists(event_st, min_size=1, max_size=40), data=st.data(), round_trip=st.booleans(),
       slide_from=slide_from_st)
def test_any_arrival_order_equals_oracle(raw: list[dict], data: st.DataObject, round_trip: bool,
                                         slide_from: int | None) -> None:
    frame = _frame(raw)
    order = data.draw(st.permutations(range(len(raw))))
    cuts = data.draw(st.lists(st.integers(0, 40), max_size=5))
    for group in (ACCOUNT_GROUP, DEVICE_GROUP):
        plan = GroupPlan(group, allowed_lateness=timedelta(days=1), slide_from=slide_from)
        out, late = _run(plan, frame, list(order), cuts, round_trip)
        assert late == []
        _check_against_oracle(plan, frame, out, late)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.lists(event_st, min_size=1, max_size=40), data=st.data(), lateness=st.integers(0, 20),
       slide_from=slide_from_st, round_trip=st.booleans())
def test_late_events_are_dropped_and_the_rest_still_equals_oracle(raw: list[dict], data: st.DataObject,
                                                                  lateness: int, slide_from: int | None,
                                                                  round_trip: bool) -> None:
    frame = _frame(raw)
    order = data.draw(st.permutations(range(len(raw))))
    plan = GroupPlan(ACCOUNT_GROUP, allowed_lateness=lateness * S, slide_from=slide_from)
    out, late = _run(plan, frame, list(order), [7, 19], round_trip=round_trip)
    _check_against_oracle(plan, frame, out, late)


@settings(max_examples=30, deadline=None)
@given(raw=st.lists(event_st, min_size=1, max_size=30), data=st.data(), slide_from=slide_from_st)
def test_redelivered_events_are_not_counted_twice(raw: list[dict], data: st.DataObject,
                                                  slide_from: int | None) -> None:
    frame = _frame(raw)
    replay = data.draw(st.lists(st.integers(0, len(raw) - 1), max_size=15))
    order = sorted(range(len(raw)), key=lambda i: (frame["event_time"][i], i)) + replay
    plan = GroupPlan(ACCOUNT_GROUP, allowed_lateness=timedelta(days=1), slide_from=slide_from)
    out, late = _run(plan, frame, order, [len(raw)], round_trip=slide_from is None)
    _check_against_oracle(plan, frame, out, late)


@pytest.mark.parametrize("slide_from", [0, None])
def test_catalog_groups_on_synthetic_events_equal_oracle(slide_from: int | None) -> None:
    """Every stream group of the real catalog, fused per (entity, source) as the worker runs them, fed in time
    order as the producers do."""
    frames = {"events.transactions": synthetic_transactions(150, seed=3, span=timedelta(hours=30)),
              "events.logins": synthetic_logins(120, seed=4, span=timedelta(hours=30))}
    groups = [g for g in FEATURE_GROUPS if isinstance(g, WindowedFeatureGroup) and g.source.topic in frames]
    assert len(groups) >= 6
    fused: dict[tuple[str, str], list[WindowedFeatureGroup]] = defaultdict(list)
    for group in groups:
        fused[(group.entity.name, group.source.name)].append(group)
    assert max(len(g) for g in fused.values()) >= 3  # velocity, diversity and withdrawals share one plan
    for members in fused.values():
        frame = frames[members[0].source.topic]
        plan = GroupPlan(members, allowed_lateness=timedelta(minutes=5), slide_from=slide_from)
        order = sorted(range(len(frame)), key=lambda i: (frame["event_time"][i], frame["event_id"][i]))
        out, late = _run(plan, frame, order, [50, 51, 120], round_trip=True)
        assert late == []
        _check_against_oracle(plan, frame, out, late)


def _same_value(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):  # an exact running sum vs partial sums: the last bits
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)
    return a == b


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=st.lists(st.tuples(event_st, st.sampled_from([0, 1, 250_000, 1_000_000, 3_000_000, 70_000_000]),
                                 st.sampled_from([0, 0, 1_000_000, 2_500_000, 4_000_000]),
                                 st.sampled_from([None, None, None, 1_000_000, 9_000_000])), min_size=1, max_size=250),
       cuts=st.lists(st.integers(0, 250), max_size=12), round_trip=st.booleans())
def test_running_aggregates_equal_whole_evaluation_through_gaps_expiry_and_disorder(
        events: list[tuple[dict, int, int, int | None]], cuts: list[int], round_trip: bool) -> None:
    """One busy entity: gaps longer than every window (deep expiry), arrivals up to 4 s out of order (inserts inside
    counted windows, late events), re-deliveries, batches of any size: every point of the sliding plan equals a
    whole evaluation."""
    sliding = GroupPlan(ACCOUNT_GROUP, allowed_lateness=2 * S, slide_from=0)
    whole = GroupPlan(ACCOUNT_GROUP, allowed_lateness=2 * S, slide_from=len(events) + 1)
    t, rows = to_us(START), []
    for i, (values, gap_us, delay_us, again_us) in enumerate(events):
        t += gap_us
        row = sliding.row(t, f"e{i:04d}", {**values, "account_id": "a0"})
        rows += [(t + delay_us, row)] + ([] if again_us is None else [(t + delay_us + again_us, row)])
    arrivals = [row for _, row in sorted(rows, key=lambda r: r[0])]
    states = {sliding: EntityState(sliding), whole: EntityState(whole)}
    checkpointed = {plan: _Checkpointed(plan) for plan in states}
    bounds = sorted({0, len(arrivals), *(c % (len(arrivals) + 1) for c in cuts)})
    for a, b in pairwise(bounds):
        results = {plan: apply(plan, state, arrivals[a:b]) for plan, state in states.items()}
        assert results[sliding] == results[whole]
        for point in results[sliding].points:
            got, expected = (evaluate(plan, states[plan], point.t) for plan in (sliding, whole))
            assert got.keys() == expected.keys()
            assert all(_same_value(got[k], expected[k]) for k in got), (point, got, expected)
        if round_trip:
            states = {plan: checkpointed[plan].round_trip("a0", state) for plan, state in states.items()}


def test_expiry_bounds_the_state() -> None:
    plan = GroupPlan(ACCOUNT_GROUP, allowed_lateness=5 * S)
    state = EntityState(plan)
    rows = [plan.row(to_us(START + i * 10 * S), f"e{i:04d}", {"device_id": f"d{i}", "txn_type": "deposit",
                                                             "amount": 1.0}) for i in range(500)]
    for row in rows:
        apply(plan, state, [row])
    horizon_events = (plan.horizon_us // (10 * 1_000_000)) + 1
    assert state.size <= horizon_events
    assert len(state.seen[0].entries) <= 20 // 10 + 2  # only combos inside lookback + lateness survive


def test_a_flag_keyed_off_the_entity_is_refused() -> None:
    source = Source.from_event(Transaction, name="transactions").with_first_seen("is_new_ip", ("ip",), 20 * S)
    group = WindowedFeatureGroup(name="bad", version=1, entity=ACCOUNT, ttl=timedelta(hours=1), description="x",
                                 owner="x", source=source,
                                 aggregations=(_agg("n", "count", None, (S,), Filter("is_new_ip", "==", True)),))
    with pytest.raises(PlanError, match="is_new_ip"):
        GroupPlan(group, timedelta(0))


def test_a_redelivered_event_is_re_emitted_only_inside_the_lateness() -> None:
    """Older points cannot be evaluated exactly any more (their windows' early events may have expired): re-emitting
    one would overwrite a correct row downstream with a wrong correction."""
    plan = GroupPlan(ACCOUNT_GROUP, allowed_lateness=5 * S)
    state = EntityState(plan)
    values = {"device_id": "d0", "txn_type": "deposit", "amount": 1.0}
    rows = [plan.row(to_us(START + i * S), f"e{i:03d}", values) for i in range(20)]
    apply(plan, state, rows)
    again = apply(plan, state, [rows[2], rows[17]])  # 17 s and 2 s behind the newest event (lateness 5 s)
    assert again.duplicates == 2 and again.late == []
    assert again.points == [Point(rows[17].t, True)]

"""The generated per-plan code and the row-wise state encoding (the oracle tests in test_window_state.py check
values; these check what they cannot see: shared columns, cached encodings, states of other group sets, fused
plans, the generated source)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pydantic_core
import pytest

from events.contracts import Login, Transaction
from features.definitions import ACCOUNT, Aggregation, Filter, Source, WindowedFeatureGroup
from streaming import state_table
from streaming.first_seen import FirstSeenIndex
from streaming.state_table import StateTable, routing_key
from streaming.window_state import EntityState, GroupPlan, PlanError, apply, evaluate, to_us

S = timedelta(seconds=1)
START = datetime(2024, 1, 1)
SOURCE = Source.from_event(Transaction, name="transactions").with_first_seen(
    "is_new_device", ("account_id", "device_id"), 20 * S)
P2P = Filter("txn_type", "==", "p2p_transfer")


def _group(name: str, *aggregations: Aggregation) -> WindowedFeatureGroup:
    return WindowedFeatureGroup(name=name, version=1, entity=ACCOUNT, ttl=timedelta(hours=1), description="test",
                                owner="test", source=SOURCE, aggregations=aggregations)


GROUP = _group(
    "t_plan",
    Aggregation(name="n", function="count", column=None, windows=(5 * S, 30 * S)),
    Aggregation(name="p2p_sum", function="sum", column="amount", windows=(5 * S, 30 * S), where=(P2P,)),
    Aggregation(name="p2p_mean", function="mean", column="amount", windows=(30 * S,), where=(P2P,)),
    Aggregation(name="devices", function="count_distinct", column="device_id", windows=(30 * S,)),
    Aggregation(name="new_dev", function="count", column=None, windows=(30 * S,),
                where=(Filter("is_new_device", "==", True),)),
)
PLAN = GroupPlan(GROUP, allowed_lateness=timedelta(minutes=1))


def _rows(plan: GroupPlan, n: int, step: timedelta = 2 * S) -> list:
    return [plan.row(to_us(START + i * step), f"e{i:03d}", {
        "account_id": "a1", "device_id": f"d{i % 3}", "txn_type": "p2p_transfer" if i % 2 else "card_payment",
        "amount": 1.5 * i}) for i in range(n)]


def test_specs_reading_the_same_values_share_a_column_and_unfiltered_counts_read_none() -> None:
    plan = GroupPlan(GROUP, allowed_lateness=timedelta(minutes=1))
    # p2p sum and mean share the value column; the mean adds its 0/1 count column; distinct and new_dev one each;
    # the unfiltered count is hi - lo, so it has no column
    assert plan.n_columns == 4
    assert "def evaluate(" in plan.source and all(f"f_{name}" in plan.source for name in plan.output_names)
    count_only = GroupPlan(_group("t_count", Aggregation(name="n", function="count", column=None, windows=(5 * S,))),
                           allowed_lateness=timedelta(0))
    assert count_only.n_columns == 0
    state = EntityState(count_only)
    apply(count_only, state, _rows(count_only, 4))
    assert evaluate(count_only, state, state.times[-1]) == {"n_5s": 3}  # events at 2, 4, 6 s inside (1 s, 6 s]


def test_out_of_order_insert_equals_in_order_append() -> None:
    plan = GroupPlan(GROUP, allowed_lateness=timedelta(minutes=1))
    rows = _rows(plan, 12)
    in_order, shuffled = EntityState(plan), EntityState(plan)
    apply(plan, in_order, rows)
    apply(plan, shuffled, rows[::2])
    apply(plan, shuffled, rows[1::2])
    assert shuffled.contrib == in_order.contrib
    assert shuffled.frags == in_order.frags  # the encoded events (first-seen indexes settle on their own schedule)


def test_encoding_is_cached_until_the_next_apply() -> None:
    plan = GroupPlan(GROUP, allowed_lateness=timedelta(minutes=1))
    rows = _rows(plan, 6)
    state = EntityState(plan)
    apply(plan, state, rows[:3])
    first = state.encode()
    assert state.encode() is first
    apply(plan, state, rows[3:])
    second = state.encode()
    assert second != first
    again = EntityState.decode(plan, second)
    assert again.times == state.times and again.contrib == state.contrib
    assert evaluate(plan, again, state.times[-1]) == evaluate(plan, state, state.times[-1])


def test_a_state_of_another_group_set_over_the_source_loads_with_what_this_plan_reads() -> None:
    """Adding or removing a group of a source keeps the events held: columns and flags are matched by name."""
    count_only = GroupPlan(_group("t_count", Aggregation(name="m", function="count", column=None, windows=(30 * S,))),
                           allowed_lateness=timedelta(minutes=1))
    state = EntityState(count_only)
    apply(count_only, state, _rows(count_only, 8))
    loaded = EntityState.decode(PLAN, state.encode())  # PLAN reads amount, device_id, txn_type and a flag
    assert loaded.times == state.times and loaded.wm == state.wm
    assert evaluate(PLAN, loaded, state.times[-1])["n_30s"] == 8
    assert evaluate(PLAN, loaded, state.times[-1])["devices_30s"] == 0  # device_id was not held: missing
    full = EntityState(PLAN)
    apply(PLAN, full, _rows(PLAN, 8))
    back = EntityState.decode(count_only, full.encode())
    assert back.times == full.times and evaluate(count_only, back, full.times[-1]) == {"m_30s": 8}
    with pytest.raises(ValueError, match="state format 7"):
        EntityState.decode(PLAN, b'{"f":7}')


def test_groups_of_one_entity_and_source_share_one_state_and_evaluation() -> None:
    other = _group("t_other", Aggregation(name="m", function="count", column=None, windows=(5 * S,)))
    fused = GroupPlan([GROUP, other], allowed_lateness=timedelta(minutes=1))
    state = EntityState(fused)
    apply(fused, state, _rows(fused, 6))
    row = dict(zip(fused.output_names, [*evaluate(fused, state, state.times[-1]).values()], strict=True))
    assert [(o.name, o.names) for o in fused.outputs] == [("t_plan", PLAN.output_names), ("t_other", ("m_5s",))]
    alone = EntityState(PLAN)
    apply(PLAN, alone, _rows(PLAN, 6))
    assert {n: row[n] for n in PLAN.output_names} == evaluate(PLAN, alone, alone.times[-1])
    with pytest.raises(PlanError, match="twice"):
        GroupPlan([GROUP, GROUP], timedelta(0))


def test_state_table_writes_unchanged_states_from_cache_and_the_value_decodes_whole() -> None:
    logins = Source.from_event(Login, name="logins")
    other = GroupPlan(WindowedFeatureGroup(
        name="t_other", version=1, entity=ACCOUNT, ttl=timedelta(hours=1), description="test", owner="test",
        source=logins, aggregations=(Aggregation(name="m", function="count", column=None, windows=(5 * S,)),)),
        allowed_lateness=timedelta(minutes=1))
    table: dict[bytes, bytes] = {}
    store = StateTable(table, {PLAN.name: PLAN, other.name: other})
    rows = _rows(PLAN, 6)
    states = {PLAN.name: EntityState(PLAN), other.name: EntityState(other)}
    apply(PLAN, states[PLAN.name], rows[:3])
    apply(other, states[other.name], [r._replace(values=()) for r in rows[:3]])
    store.store("a1", states)
    assert store.flush() == {b"a1"}
    cached = states[other.name].encode()
    apply(PLAN, states[PLAN.name], rows[3:])  # only one state changes
    store.store("a1", states)
    store.flush()
    assert states[other.name].encode() is cached
    fresh = StateTable(table, {PLAN.name: PLAN, other.name: other}).load("a1")  # decoded from the bytes
    # the same values (a first-seen index may list its combos in another order than one decoded from the bytes)
    assert ({n: pydantic_core.from_json(s.encode()) for n, s in fresh.items()}
            == {n: pydantic_core.from_json(s.encode()) for n, s in states.items()})


def test_states_reach_the_table_at_the_checkpoint_and_a_discard_goes_back_to_it() -> None:
    table: dict[bytes, bytes] = {}
    store = StateTable(table, {PLAN.name: PLAN})
    rows = _rows(PLAN, 6)
    states = {PLAN.name: EntityState(PLAN)}
    apply(PLAN, states[PLAN.name], rows[:3])
    store.store("a1", states)
    assert table == {} and store.load("a1") is states and store.dirty == 1  # the batch after sees it
    assert store.flush() == {b"a1"} and store.dirty == 0
    checkpointed = table[b"a1"]
    states = store.load("a1")
    apply(PLAN, states[PLAN.name], rows[3:])  # changed in place, never checkpointed
    store.store("a1", states)
    store.discard()  # a rebalance: the events since the checkpoint are re-read
    assert table[b"a1"] is checkpointed and store.load("a1")[PLAN.name].size == 3
    empty = {PLAN.name: EntityState(PLAN)}
    store.store("a1", empty)
    assert store.flush() == {b"a1"} and b"a1" not in table  # nothing left: the key is deleted


def test_a_forwarded_row_picks_the_groups_columns_and_reads_a_missing_one_as_none() -> None:
    plan = GroupPlan(GROUP, allowed_lateness=timedelta(0))
    row = {"amount": 1.0, "device_id": "d1", "extra": "x", "txn_type": "p2p_transfer", "account_id": "a1"}
    assert plan.picker(tuple(row))(list(row.values())) == tuple(row[c] for c in plan.columns)
    assert plan.picker(("device_id",))(["d7"]) == tuple("d7" if c == "device_id" else None for c in plan.columns)


def test_a_value_over_the_record_limit_is_chunked_and_old_chunks_go(monkeypatch: pytest.MonkeyPatch) -> None:
    """A hot entity's value would exceed Kafka's record limit (the worker crashed on a merchant's 1.6 MB state)."""
    monkeypatch.setattr(state_table, "MAX_RECORD_BYTES", 300)
    table: dict[bytes, bytes] = {}
    store = StateTable(table, {PLAN.name: PLAN})
    rows = _rows(PLAN, 12, step=S)
    states = {PLAN.name: EntityState(PLAN)}
    apply(PLAN, states[PLAN.name], rows[:6])
    store.store("a1", states)
    store.flush()
    first_chunks = {k for k in table if k != b"a1"}
    assert len(first_chunks) >= 2 and all(routing_key(k) == b"a1" for k in first_chunks)
    assert max(len(v) for v in table.values()) <= 300
    apply(PLAN, states[PLAN.name], rows[6:])
    store.store("a1", states)
    assert store.flush() == {b"a1"}
    assert not first_chunks & set(table)  # the previous generation is gone once the new head is written
    fresh = StateTable(table, {PLAN.name: PLAN}).load("a1")
    assert pydantic_core.from_json(fresh[PLAN.name].encode()) == pydantic_core.from_json(states[PLAN.name].encode())
    store.store("a1", {PLAN.name: EntityState(PLAN)})
    store.flush()
    assert table == {}
    table[b"a1"] = b'{"f":1,"chunked":[7,2]}'
    with pytest.raises(ValueError, match="missing"):
        StateTable(table, {PLAN.name: PLAN}).load("a1")


def test_first_seen_entries_encode_from_cached_pieces_exactly_as_a_whole() -> None:
    def same_as_whole(index: FirstSeenIndex) -> bool:  # the same object; the order of its members may differ
        return pydantic_core.from_json(index.encode()) == pydantic_core.from_json(pydantic_core.to_json(index.entries))

    index = FirstSeenIndex()
    for i in range(30):
        index.observe(f'["a{i % 7}"]', i * 1_000_000, f"e{i:03d}", 20_000_000)
        assert same_as_whole(index)
        index.settle(i * 1_000_000 - 5_000_000, 20_000_000)
        assert same_as_whole(index)
        assert not index.changed  # encoded: nothing left to re-encode
    restored = FirstSeenIndex()
    restored.merge(pydantic_core.from_json(index.encode()), pending=True)
    assert restored.entries == index.entries and same_as_whole(restored)
    index.settle(10**12, 20_000_000)  # everything ages out
    assert index.encode() == b"{}" and index.pieces == {}


def _segments(table: dict[bytes, bytes]) -> dict[bytes, bytes]:
    return {k: v for k, v in table.items() if b"\x00s" in k}


def test_a_checkpoint_writes_the_new_events_and_leaves_sealed_segments_alone() -> None:
    """A hot entity's state must not be written whole at every checkpoint (a merchant holds 30 days of payments)."""
    table: dict[bytes, bytes] = {}
    store = StateTable(table, {PLAN.name: PLAN}, segment_events=32)  # sealed from 4 events on
    rows = _rows(PLAN, 143, step=S / 10)
    states = {PLAN.name: EntityState(PLAN)}
    apply(PLAN, states[PLAN.name], rows[:100])
    store.store("m1", states)
    store.flush()
    first = _segments(table)
    assert len(first) == 4 and all(routing_key(k) == b"m1" for k in first)  # 32 + 32 + 32 + 4, none in the head
    apply(PLAN, states[PLAN.name], rows[100:103])  # fewer than an eighth of a segment: they stay in the head
    store.store("m1", states)
    store.flush()
    assert _segments(table) == first
    apply(PLAN, states[PLAN.name], rows[103:])  # now 43 new: the last segment fills up (28 more), then a new one
    store.store("m1", states)
    store.flush()
    after = _segments(table)
    assert len(set(after) - set(first)) == 2 and len(set(first) - set(after)) == 1
    fresh = StateTable(table, {PLAN.name: PLAN}).load("m1")[PLAN.name]
    state = states[PLAN.name]
    assert (fresh.times, fresh.frags, fresh.contrib, fresh.wm) == (state.times, state.frags, state.contrib, state.wm)
    assert evaluate(PLAN, fresh, state.times[-1]) == evaluate(PLAN, state, state.times[-1])


def test_an_event_into_a_sealed_segment_rewrites_that_segment_and_expiry_deletes_them() -> None:
    plan = GroupPlan(GROUP, allowed_lateness=timedelta(minutes=10))
    table: dict[bytes, bytes] = {}
    store = StateTable(table, {plan.name: plan}, segment_events=4)
    rows = _rows(plan, 24, step=S)
    states = {plan.name: EntityState(plan)}
    apply(plan, states[plan.name], rows[:12:2] + rows[12:])  # every other event of the first 12 s missing
    store.store("m1", states)
    store.flush()
    before = _segments(table)
    apply(plan, states[plan.name], [rows[5]])  # out of order, into the second segment
    store.store("m1", states)
    store.flush()
    after = _segments(table)
    assert len(set(before) - set(after)) == 1 and len(set(after) - set(before)) == 1
    fresh = StateTable(table, {plan.name: plan}).load("m1")[plan.name]
    assert fresh.frags == states[plan.name].frags and rows[5].event_id in fresh.ids
    late = plan.row(rows[-1].t + 40 * 60 * 1_000_000, "e999", {"device_id": "d0", "txn_type": "card_payment",
                                                                "amount": 1.0})
    apply(plan, states[plan.name], [late])  # 40 min later: everything before it leaves the 30 s windows
    store.store("m1", states)
    store.flush()
    assert _segments(table) == {} and StateTable(table, {plan.name: plan}).load("m1")[plan.name].ids == ["e999"]


def test_a_state_of_the_previous_format_loads_and_another_plans_segments_are_rewritten() -> None:
    state = EntityState(PLAN)
    apply(PLAN, state, _rows(PLAN, 6))
    head = pydantic_core.from_json(state.encode())
    previous = {k: v for k, v in head.items() if k != "k"} | {"f": 3}  # format 3: every event in the head
    table = {b"a1": pydantic_core.to_json({"f": 1, "groups": {PLAN.name: previous}})}
    assert StateTable(table, {PLAN.name: PLAN}).load("a1")[PLAN.name].frags == state.frags

    count_only = GroupPlan(_group("t_count", Aggregation(name="m", function="count", column=None, windows=(30 * S,))),
                           allowed_lateness=timedelta(minutes=1))
    table = {}
    writer = StateTable(table, {PLAN.name: PLAN}, segment_events=2)
    writer.store("a1", {PLAN.name: state})
    writer.flush()
    written = _segments(table)
    reader = StateTable(table, {count_only.name: count_only}, segment_events=2)
    loaded = reader.load("a1")  # the same state name (entity and source), other columns
    reader.store("a1", loaded)
    reader.flush()
    assert not set(written) & set(_segments(table))  # every segment written again with this plan's columns
    again = StateTable(table, {count_only.name: count_only}).load("a1")[count_only.name]
    assert again.frags == loaded[count_only.name].frags and evaluate(count_only, again, again.times[-1]) == {"m_30s": 6}


def test_a_first_seen_index_is_stored_as_deltas_until_they_outweigh_it() -> None:
    """A merchant's index holds a combo per payer: a checkpoint writes the combos that changed, not all of them."""
    table: dict[bytes, bytes] = {}
    store = StateTable(table, {PLAN.name: PLAN}, segment_events=16)  # sealed (and deltas written) from 2 on
    state = EntityState(PLAN)

    def checkpoint(devices: list[str]) -> list[dict]:
        """Events from ``devices`` (one each, 1 s apart); the index records afterwards, in the head's order."""
        t = state.wm or to_us(START)
        values = {"account_id": "a1", "txn_type": "card_payment", "amount": 1.0}
        apply(PLAN, state, [PLAN.row(t + (i + 1) * 1_000_000, f"e{t}-{i}", {**values, "device_id": d})
                            for i, d in enumerate(devices)])
        store.store("m1", {PLAN.name: state})
        store.flush()
        generations = pydantic_core.from_json(table[b"m1"])["groups"][PLAN.name]["x"][0]
        assert {k for k, v in _segments(table).items() if v.startswith(b"{")} == {
            state_table.record_key(b"m1", g) for g in generations}  # nothing else left over
        return [pydantic_core.from_json(table[state_table.record_key(b"m1", g)]) for g in generations]

    assert [len(r) for r in checkpoint([f"d{i}" for i in range(10)])] == [10]
    records = checkpoint(["d10", "d11", "d12"])
    assert [set(r) for r in records][1:] == [{'["a1","d10"]', '["a1","d11"]', '["a1","d12"]'}]  # a delta
    for _ in range(4):  # the same three combos again and again: 3 more each time
        records = checkpoint(["d10", "d11", "d12"])
    assert [len(r) for r in records] == [10, 3, 3, 3, 3, 3]
    records = checkpoint(["d10", "d11", "d12"])  # 28 written for 13 combos: one whole record replaces them
    assert [len(r) for r in records] == [13]
    fresh = StateTable(table, {PLAN.name: PLAN}).load("m1")[PLAN.name]
    assert fresh.seen[0].entries == state.seen[0].entries and fresh.frags == state.frags


def test_the_records_of_a_group_no_longer_computed_go_at_the_entitys_next_write() -> None:
    logins = GroupPlan(WindowedFeatureGroup(
        name="t_logins", version=1, entity=ACCOUNT, ttl=timedelta(hours=1), description="test", owner="test",
        source=Source.from_event(Login, name="logins"),
        aggregations=(Aggregation(name="m", function="count", column=None, windows=(5 * S,)),)),
        allowed_lateness=timedelta(minutes=1))
    table: dict[bytes, bytes] = {}
    writer = StateTable(table, {PLAN.name: PLAN, logins.name: logins}, segment_events=2)
    states = {PLAN.name: EntityState(PLAN), logins.name: EntityState(logins)}
    apply(PLAN, states[PLAN.name], _rows(PLAN, 6))
    apply(logins, states[logins.name], [r._replace(values=()) for r in _rows(logins, 3)])
    writer.store("a1", states)
    writer.flush()
    assert _segments(table)
    reader = StateTable(table, {logins.name: logins}, segment_events=2)  # the transaction groups were removed
    loaded = reader.load("a1")
    apply(logins, loaded[logins.name], [r._replace(values=()) for r in _rows(logins, 4)[3:]])
    reader.store("a1", loaded)
    reader.flush()
    head = pydantic_core.from_json(table[b"a1"])["groups"]
    assert list(head) == [logins.name]
    assert set(_segments(table)) == {state_table.record_key(b"a1", g) for g in EntityState.named(head[logins.name])}
    assert StateTable(table, {logins.name: logins}).load("a1")[logins.name].size == 4

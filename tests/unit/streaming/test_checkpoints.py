"""Spread checkpoints: states are written about ``interval_s`` after their first change, a batch's input is
released only once every state it changed is written, and a discard goes back to what was written."""

from __future__ import annotations

from streaming.checkpoints import Checkpoints
from streaming.state_table import StateTable
from streaming.window_state import EntityState, apply
from tests.unit.streaming.test_compiled_plan import PLAN, _rows


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _touch(store: StateTable, key: str, rows: list) -> None:
    states = store.load(key) or {PLAN.name: EntityState(PLAN)}
    apply(PLAN, states[PLAN.name], rows)
    store.store(key, states)


def test_each_batch_writes_what_changed_an_interval_ago_and_releases_only_fully_written_batches() -> None:
    table: dict[bytes, bytes] = {}
    clock = _Clock()
    checkpoints: Checkpoints[str] = Checkpoints(StateTable(table, {PLAN.name: PLAN}), 1.0, clock)
    rows = _rows(PLAN, 8)
    store = checkpoints.states

    checkpoints.begin("offsets-1")  # t=100: a1, a2 change
    _touch(store, "a1", rows[:1])
    _touch(store, "a2", rows[:1])
    assert checkpoints.flush_due() == set() and checkpoints.releasable() == []

    clock.now = 100.6
    checkpoints.begin("offsets-2")  # a1 again (still one pending write), a3 for the first time
    _touch(store, "a1", rows[1:2])
    _touch(store, "a3", rows[:1])
    assert checkpoints.flush_due() == set()

    clock.now = 101.2  # batch 1 began an interval ago: the entities it first changed are due, a3 is not
    checkpoints.begin("offsets-3")
    assert checkpoints.flush_due() == {b"a1", b"a2"}
    assert store.load("a1") is not None and len(table) == 2
    assert checkpoints.releasable() == ["offsets-1"]  # batch 2 changed a3, which is not written yet
    assert store.oldest_dirty == 2

    _touch(store, "a1", rows[2:3])  # changed again by batch 3: written again later, not now
    clock.now = 101.7
    assert checkpoints.flush_due() == {b"a3"}
    assert checkpoints.releasable() == ["offsets-2"]  # batch 3 still has a1 unwritten
    assert checkpoints.flush_due(everything=True) == {b"a1"}  # idle: everything, everything released
    assert checkpoints.written == {b"a1", b"a2", b"a3"}  # what the next release marks in the changelog
    assert checkpoints.releasable() == ["offsets-3"] and len(checkpoints) == 0
    assert store.oldest_dirty is None


def test_a_release_is_due_every_interval_or_when_idle_and_a_discard_forgets_the_open_batches() -> None:
    clock = _Clock()
    checkpoints: Checkpoints[str] = Checkpoints(StateTable({}, {PLAN.name: PLAN}), 1.0, clock)
    assert not checkpoints.release_due(idle=True)  # nothing open
    checkpoints.begin("b1")
    assert checkpoints.release_due(idle=True) and not checkpoints.release_due()
    clock.now = 101.0
    assert checkpoints.release_due()
    checkpoints.released()
    assert not checkpoints.release_due() and not checkpoints.written
    assert checkpoints.idle()  # no batch for an interval, input still held
    _touch(checkpoints.states, "a1", _rows(PLAN, 1))
    checkpoints.discard()  # a rebalance
    assert len(checkpoints) == 0 and checkpoints.states.dirty == 0 and checkpoints.states.load("a1") == {}

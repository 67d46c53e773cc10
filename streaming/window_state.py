"""The incremental event-time window engine of one windowed feature group (pure: no Faust, no Kafka).

The stream worker keeps one ``EntityState`` per (group, entity) in a Faust table and calls
``apply`` with the entity's new events of a batch, then ``evaluate`` at the points to emit.
Everything here is deterministic and testable against ``features.oracle`` (the truth).

Why per-event contributions and not coarse time buckets: a window evaluated at ``t`` covers
``t - W < event_time <= t`` with microsecond times, so at some future evaluation *every* event
sits on the lower edge of every window; only its exact time decides whether it still counts.
A bucket aggregate can only serve buckets entirely inside a window, so exactness needs the
per-event times anyway. The state therefore keeps, per event, its time, id, its encoded payload
entry and pre-filtered *contributions* (the value an aggregation reads, or the aggregation's
neutral element when the event does not match its filters; ``streaming.compiled_plan`` generates
the code that computes and aggregates them). This is the finest bucketing: distinct counts get
exact value sets, ``last`` gets exact ordering, and out-of-order events are inserted in place.
The state is bounded by the horizon ``max window + allowed lateness``: older events can never
enter an evaluation again and are expired on every update.

Event time and lateness: the entity's *watermark* is the newest event time it has seen. An
event older than ``watermark - allowed_lateness`` is late: not applied, returned to the caller
(who dead-letters and counts it). An accepted out-of-order event changes the values at every
already-emitted point at or after its time, so ``apply`` returns those points too, marked as
corrections; downstream sinks upsert on (entity, event_time). Re-delivered events (same
``event_id``, at-least-once) are not applied twice; their point is re-emitted so an output lost
in a crash is produced again, if it is not older than the lateness (no point before
``watermark - allowed_lateness`` is evaluated: expiry keeps exact windows from there on only).
"""

from __future__ import annotations

import bisect
import itertools
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import pydantic_core

from features.definitions.groups import WindowedFeatureGroup
from features.definitions.names import seconds
from streaming.compiled_plan import Spec, compile_group
from streaming.first_seen import FirstSeenIndex

US_PER_S = 1_000_000
EPOCH = datetime(1970, 1, 1)
STATE_FORMAT = 4
READABLE_FORMATS = (3, 4)  # format 3 is format 4 without segments: a changelog of the previous release still loads
# A checkpoint seals a state's newest events into *segments* of up to this many events
# (``Settings.stream_segment_events``) once they make an eighth of one; fewer stay in the state's head value. Sealed
# segments are stored under keys of their own and rewritten only when an event inside them changes (an out-of-order
# insert, a first-seen demotion), so a checkpoint writes what arrived since the last one instead of the whole state:
# a merchant's state holds every payment of 30 days.
SEGMENT_EVENTS = 256
# A state holding this many events per running aggregate of its plan moves them from point to point instead of
# reading whole windows (``evaluate_row``). Measured per plan: moving costs ~0.5 us per aggregate and point, reading
# ~5-10 ns per event per aggregate; the crossover was 100-600 events (12-15 per aggregate) with the events spread
# over the longest window, and lower when they crowd the short ones too.
SLIDE_EVENTS_PER_AGGREGATE = 12


_EPOCH_UTC = EPOCH.replace(tzinfo=UTC)
_US = timedelta(microseconds=1)


def to_us(value: datetime) -> int:
    """Microseconds since the epoch; aware values are converted to UTC, naive ones are UTC already."""
    return (value - (EPOCH if value.tzinfo is None else _EPOCH_UTC)) // _US


def from_us(value: int) -> datetime:
    """Naive UTC datetime of an epoch-microsecond value (the storage convention)."""
    return EPOCH + timedelta(microseconds=value)


class PlanError(ValueError):
    """A group definition the stream engine cannot compute incrementally (the message says why)."""


@dataclass(frozen=True)
class FlagPlan:
    name: str
    key_columns: tuple[str, ...]
    lookback_us: int


class EventRow(NamedTuple):
    """One event as the engine sees it: time, id and the values of the columns the group reads."""

    t: int
    event_id: str
    values: tuple[Any, ...]


class Point(NamedTuple):
    """An evaluation to emit: the features as of ``t``; ``correction`` when it may replace an earlier emit."""

    t: int
    correction: bool


@dataclass(slots=True)
class ApplyResult:
    points: list[Point]
    late: list[EventRow]
    duplicates: int


def _tuple_getter(make: Callable[..., Callable[[Any], Any]], keys: Sequence[Any]) -> Callable[[Any], tuple[Any, ...]]:
    """``operator.attrgetter``/``itemgetter`` over ``keys`` that always returns a tuple (also for 0 or 1 key)."""
    if not keys:
        return lambda record: ()
    getter = make(*keys)
    return (lambda record: (getter(record),)) if len(keys) == 1 else getter


@dataclass(frozen=True)
class GroupOutput:
    """One feature group's share of a plan's evaluation: ``names`` are ``row[start:stop]``."""

    name: str
    version: int
    join_key: str
    names: tuple[str, ...]
    start: int
    stop: int


class GroupPlan:
    """What the engine needs from the windowed groups of one (entity, source), compiled once per worker.

    Groups that read the same source for the same entity share one state and one evaluation (a *fused*
    plan): a transaction updates the account's velocity, diversity and withdrawal groups with one insert,
    one expiry, one first-seen pass and one set of window bounds, and the state holds each event once.
    The per-(entity, group) bookkeeping, not the arithmetic, was most of the worker's time. The state is
    named after the entity and source, so adding or removing a group of that source keeps the events already held.
    """

    def __init__(self, groups: WindowedFeatureGroup | Sequence[WindowedFeatureGroup],
                 allowed_lateness: timedelta, *, slide_from: int | None = None) -> None:
        groups = (groups,) if isinstance(groups, WindowedFeatureGroup) else tuple(groups)
        for group in groups:
            if not isinstance(group, WindowedFeatureGroup):
                raise PlanError(f"feature group {getattr(group, 'name', group)!r} is not a windowed (stream) group")
        if not groups:
            raise PlanError("a plan needs at least one feature group")
        if allowed_lateness < timedelta(0):
            raise PlanError("allowed lateness must not be negative")
        first = groups[0]
        if any((g.entity, g.source) != (first.entity, first.source) for g in groups):
            raise PlanError(f"groups {[g.name for g in groups]} do not share one entity and source: one plan each")
        self.groups: tuple[WindowedFeatureGroup, ...] = groups
        # the state's name in the entity's table value (the entity table holds devices, counterparties, ...)
        self.name = f"{first.entity.name}.{first.source.name}"
        self.join_key = first.entity.join_key
        self.entity = first.entity.name
        self.source_topic = first.source.topic
        self.lateness_us = allowed_lateness // timedelta(microseconds=1)

        flags = []
        for name in sorted({n for g in groups for n in g.used_first_seen()}):
            derived = first.source.derived(name)
            assert derived is not None
            if self.join_key not in derived.keys:
                # The flag would need every event of the key combination, across entities: state this
                # worker's partition does not hold. Refuse at start-up instead of computing wrong values.
                raise PlanError(f"feature group(s) {[g.name for g in groups]}: first-seen flag {name!r} keys "
                                f"{derived.keys} do not include the entity key {self.join_key!r}, so the stream "
                                f"engine cannot keep it")
            flags.append(FlagPlan(name, derived.keys, seconds(derived.lookback) * US_PER_S))
        self.flags: tuple[FlagPlan, ...] = tuple(flags)
        self.flag_names: tuple[str, ...] = tuple(f.name for f in self.flags)

        needed: set[str] = set()
        aggregations = [agg for g in groups for agg in g.aggregations]
        for agg in aggregations:
            if agg.column is not None and agg.column not in self.flag_names:
                needed.add(agg.column)
            needed.update(f.field for f in agg.where if f.field not in self.flag_names)
        for flag in self.flags:
            needed.update(flag.key_columns)
        needed.discard(first.source.timestamp_column)
        needed.discard(first.source.id_column)
        self.columns: tuple[str, ...] = tuple(sorted(needed))
        for flag in self.flags:
            if not set(flag.key_columns) <= set(self.columns):
                raise PlanError(f"first-seen flag {flag.name!r}: key columns {flag.key_columns} must be event columns")
        self.flag_lookbacks: tuple[int, ...] = tuple(f.lookback_us for f in self.flags)
        # the values of an object with the source's attributes (a validated pydantic event), in ``columns`` order
        self.values_of = _tuple_getter(operator.attrgetter, self.columns)
        self._pickers: dict[tuple[tuple[str, ...], tuple[str, ...]], Callable[[Sequence[Any]], tuple[Any, ...]]] = {}
        self.state_header = b'{"f":%d,"c":%s,"g":%s' % (STATE_FORMAT, pydantic_core.to_json(self.columns),
                                                         pydantic_core.to_json(self.flag_names))

        columns = first.source.all_columns
        specs, outputs = [], []
        for group in groups:
            start = sum(len(s.names) for s in specs)
            for agg in group.aggregations:
                windows = sorted(agg.windows)
                specs.append(Spec(
                    function=agg.function, column=agg.column, where=agg.where,
                    windows_us=tuple(seconds(w) * US_PER_S for w in windows),
                    names=tuple(agg.feature_name(w) for w in windows),
                    integer=agg.column is not None and columns.get(agg.column) == "int64",
                ))
            stop = sum(len(s.names) for s in specs)
            outputs.append((group, start, stop))
        self.specs: tuple[Spec, ...] = tuple(specs)
        compiled = compile_group(self.specs, self.columns, self.flag_names, [f.key_columns for f in self.flags])
        self.source = compiled.source  # the generated code, for debugging: print(plan.source)
        self.n_columns = compiled.n_columns
        # per contribution column: what this event adds (the neutral element when it does not count)
        self.contributions: Callable[[Sequence[Any], Sequence[bool | None]], list[Any]] = compiled.contributions
        self.append_contributions: Callable[[list[list[Any]], Sequence[Any], Sequence[bool | None]], None] = (
            compiled.append)
        self._evaluate = compiled.evaluate
        self._slide = compiled.slide
        # per flag the event's key combination, None where a key is missing
        self.flag_combos: Callable[[Sequence[Any]], tuple[str | None, ...]] = compiled.combos
        self._slide_running = compiled.n_running
        self.slide_lowest = 1 + compiled.n_windows  # in a slide: the largest window's lower edge (the lowest)
        # the state size from which ``evaluate_row`` moves running aggregates (tests pass 0: always)
        self.slide_from = SLIDE_EVENTS_PER_AGGREGATE * compiled.n_running if slide_from is None else slide_from
        # evaluation order (spec by spec, windows ascending, groups in order): what ``evaluate_row`` returns
        self.output_names: tuple[str, ...] = tuple(name for spec in self.specs for name in spec.names)
        if len(set(self.output_names)) != len(self.output_names):
            raise PlanError(f"groups {[g.name for g in groups]} define a feature name twice")
        self.outputs: tuple[GroupOutput, ...] = tuple(
            GroupOutput(g.name, g.version, self.join_key, self.output_names[a:b], a, b) for g, a, b in outputs)
        self.max_window_us = max(s.windows_us[-1] for s in self.specs)
        self.horizon_us = self.max_window_us + self.lateness_us

    def new_slide(self) -> list[Any]:
        """``slide``'s list before its first point: no point yet, every position 0, no aggregates."""
        return [None, *[0] * self.slide_lowest, *[None] * self._slide_running]

    @property
    def group_names(self) -> tuple[str, ...]:
        return tuple(g.name for g in self.groups)

    # -- rows ------------------------------------------------------------------------------------------
    def row(self, t: int, event_id: str, record: Mapping[str, Any] | Any) -> EventRow:
        """An ``EventRow`` from a mapping or an object with the source's attributes (a pydantic event)."""
        if type(record) is dict or isinstance(record, Mapping):  # the ABC check alone costs ~5 us on a model
            return EventRow(t, event_id, tuple(record.get(c) for c in self.columns))
        return EventRow(t, event_id, self.values_of(record))

    def picker(self, names: tuple[str, ...], wanted: tuple[str, ...] | None = None
               ) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
        """The values of ``wanted`` (default: the plan's columns) out of a sequence of the columns ``names``, e.g.
        a forwarded row or a stored state. A column the row does not carry reads as missing (None), as a mapping
        lookup would: a pack forwarded by a worker of an older version must not stop the stage that reads it."""
        wanted = self.columns if wanted is None else wanted
        pick = self._pickers.get((names, wanted))
        if pick is None:
            index = {name: i for i, name in enumerate(names)}
            if all(c in index for c in wanted):
                pick = _tuple_getter(operator.itemgetter, [index[c] for c in wanted])
            else:
                positions = [index.get(c) for c in wanted]
                pick = lambda values: tuple(None if i is None else values[i] for i in positions)  # noqa: E731
            self._pickers[(names, wanted)] = pick
        return pick


def _frag(t: int, event_id: str, values: Sequence[Any], flags: Sequence[bool | None]) -> bytes:
    """One event's entry of the state payload (format 2)."""
    return pydantic_core.to_json((t, event_id, values, flags))


class EntityState:
    """Events of one entity inside the horizon, sorted by (time, id), plus first-seen indexes.

    For checkpoints the events are split by time into sealed *segments* and a *tail*: segment ``i`` holds the
    events before ``bounds[i]`` (and at or after ``bounds[i - 1]``), the tail those at or after ``bounds[-1]``.
    ``gens[i]`` is the generation under which segment ``i`` is stored, None while it must be (re)written.
    Each first-seen index is stored as *records* (``records[i]``: its generations, a whole index then deltas, with
    ``recorded[i]`` combos in them) plus the combos changed since (``FirstSeenIndex.pending``, in the head).
    ``stale`` lists the generations a written head no longer names (deleted after the next head write).
    """

    __slots__ = ("bounds", "contrib", "encoded", "frags", "gens", "header", "ids", "recorded", "records", "seen",
                 "slide", "stale", "times", "wm")

    def __init__(self, plan: GroupPlan) -> None:
        self.header = plan.state_header
        # ``encode()``'s result until the next ``apply``: a stored entity touched for one of its groups
        # re-encodes that group only (the state table writes every group of the entity per batch)
        self.encoded: bytes | None = None
        self.wm: int | None = None
        self.times: list[int] = []
        self.ids: list[str] = []
        # per event its encoded payload entry ``[time, id, [values], [first-seen flags]]``: encoding a state is a
        # join, and the values and flags need no Python objects of their own (read back only by ``_demote``)
        self.frags: list[bytes] = []
        self.contrib: list[list[Any]] = [[] for _ in range(plan.n_columns)]  # contribution columns, aligned with times
        # a tuple: most groups have no flags, and ``()`` is one shared object the collector never visits
        self.seen: tuple[FirstSeenIndex, ...] = tuple([FirstSeenIndex() for _ in plan.flags]) if plan.flags else ()
        # the running aggregates of the last point evaluated (``evaluate_row``); None: none kept. In memory only, and
        # dropped by a change to an event they counted: an insert inside their windows (an out-of-order event, which
        # is also what demotes first-seen flags) or an expiry reaching into them
        self.slide: list[Any] | None = None
        self.bounds: list[int] = []
        self.gens: list[int | None] = []
        self.records: list[list[int]] = [[] for _ in plan.flags]
        self.recorded: list[int] = [0 for _ in plan.flags]
        self.stale: list[int] = []

    @property
    def size(self) -> int:
        """Events held (deliberately not ``__len__``: an empty state must still be truthy)."""
        return len(self.times)

    @property
    def empty(self) -> bool:
        return not self.times and not any(s.entries for s in self.seen)

    # -- serialization (Faust table values) -------------------------------------------------------------
    # Format 4: the head {"f": 4, "c": [columns], "g": [flags], "wm": .., "k": [[bound, generation], ...],
    # "e": [[time_us, event_id, [values], [flags]], ...], "x": [[generation, ...] per flag], "s": [first-seen
    # entries per flag]} holds the tail's events and the index entries changed since the flag's last record (null: a
    # dropped combo); each sealed segment is stored apart as the JSON array of its events, each index record as an
    # object of entries (``checkpoint``). Row-wise, so each event is encoded once (``frags``) and a value is a join
    # of cached pieces. A state never checkpointed has no segments nor records: its head holds everything. The column
    # and flag names make a state readable by a plan of another group set over the same source (a column it never
    # held reads as missing). Contributions are derived: recomputed on load.
    def encode(self) -> bytes:
        """The head value (every event when nothing is sealed); cached until the state changes."""
        if self.encoded is None:
            if self.bounds:
                start = bisect.bisect_left(self.times, self.bounds[-1])
                sealed = pydantic_core.to_json(list(zip(self.bounds, self.gens, strict=True)))
            else:  # most states: short ones
                start, sealed = 0, b"[]"
            self.encoded = b'%s,"wm":%s,"k":%s,"e":[%s],"x":%s,"s":[%s]}' % (
                self.header, pydantic_core.to_json(self.wm), sealed, b",".join(self.frags[start:]),
                pydantic_core.to_json(self.records),
                # with no record below it, the head holds the whole index (dropped combos need no mention)
                b",".join(s.encode(s.pending) if records else s.encode() for s, records in zip(
                    self.seen, self.records, strict=True)))
        return self.encoded

    def generations(self) -> list[int]:
        """Every record the head names (segments, index records): what deleting the state deletes."""
        return [*(g for g in self.gens if g is not None), *(g for gens in self.records for g in gens)]

    @staticmethod
    def named(payload: Mapping[str, Any]) -> list[int]:
        """``generations`` of a stored head (of a group no longer computed, say)."""
        return [*(g for _, g in payload.get("k", ())), *(g for gens in payload.get("x") or () for g in gens)]

    def checkpoint(self, new_generation: Callable[[], int], size: int = SEGMENT_EVENTS) -> list[tuple[int, bytes]]:
        """Seal the tail into segments of up to ``size`` events, and store first-seen changes as index records, once
        either holds an eighth of a segment; return the records to store, as (generation, value), before the head
        (``encode``) that names them. Afterwards ``stale`` lists the generations to delete."""
        seal = max(2, size // 8)
        self._seal(seal, size)
        writes = []
        lo = 0
        for i, bound in enumerate(self.bounds):
            hi = bisect.bisect_left(self.times, bound)
            if self.gens[i] is None:
                self.gens[i] = generation = new_generation()
                writes.append((generation, b"[%s]" % b",".join(self.frags[lo:hi])))
            lo = hi
        for i, index in enumerate(self.seen):
            value = self._index_record(i, index, seal)
            if value is not None:
                self.records[i].append(generation := new_generation())
                writes.append((generation, value))
        if writes:
            self.encoded = None
        return writes

    def _seal(self, seal: int, size: int) -> None:
        """New segments (generation None) for a tail of ``seal`` events or more; the last segment fills up first
        (rewritten): a state gaining a few events per checkpoint would otherwise end up as thousands of tiny ones."""
        times, bounds = self.times, self.bounds
        start = bisect.bisect_left(times, bounds[-1]) if bounds else 0
        if len(times) - start < seal:
            return
        if bounds:
            room = size - (start - (bisect.bisect_left(times, bounds[-2]) if len(bounds) > 1 else 0))
            if room > 0:
                self._rewrite(bounds[-1] - 1)
                bounds[-1] = times[min(start + room, len(times)) - 1] + 1
                start = bisect.bisect_left(times, bounds[-1])
        for end in range(start + size, len(times) + size, size):
            bound = times[min(end, len(times)) - 1] + 1  # every event at that time goes in, whatever its position
            if not bounds or bound > bounds[-1]:
                bounds.append(bound)
                self.gens.append(None)

    def _index_record(self, i: int, index: FirstSeenIndex, seal: int) -> bytes | None:
        """The record to store for flag ``i``'s pending changes, if ``seal`` or more: a delta, or the whole index once
        the deltas would outweigh it (each combo is written about twice in all, and a load reads at most about
        three times the index); the records it replaces go to ``stale``."""
        records = self.records[i]
        if not index.entries and (records or index.pending):  # nothing left: no record to keep, no drop to note
            self.stale += records
            records.clear()
            self.recorded[i] = 0
            index.pending.clear()
            self.encoded = None
        if len(index.pending) < seal:
            return None
        if self.recorded[i] + len(index.pending) > 2 * len(index.entries):
            self.stale += records
            records.clear()
            value, self.recorded[i] = index.encode(), len(index.entries)
        else:
            value, self.recorded[i] = index.encode(index.pending), self.recorded[i] + len(index.pending)
        index.pending.clear()
        return value

    def _rewrite(self, t: int) -> None:
        """The sealed segment holding time ``t`` (if any) changed: store it again under a new generation."""
        i = bisect.bisect_right(self.bounds, t)
        if i < len(self.bounds) and self.gens[i] is not None:
            self.stale.append(self.gens[i])  # type: ignore[arg-type]
            self.gens[i] = None

    @classmethod
    def from_payload(cls, plan: GroupPlan, payload: Mapping[str, Any], read: Callable[[int], Any] | None = None
                     ) -> EntityState:
        """A state from its head; ``read(generation)`` gives a record it names (a segment, an index record)."""
        if payload.get("f") not in READABLE_FORMATS:
            raise ValueError(f"state format {payload.get('f')!r} is not one of {READABLE_FORMATS}")
        sealed, flag_names = payload.get("k", ()), tuple(payload["g"])
        records = dict(zip(flag_names, payload.get("x") or [[] for _ in flag_names], strict=True))
        if read is None and (sealed or any(records.values())):
            raise ValueError("the state is stored in records: it loads through its table (StateTable)")
        state = cls(plan)
        state.wm = payload["wm"]
        stored_seen = dict(zip(flag_names, payload["s"], strict=True))
        for i, name in enumerate(plan.flag_names):
            index = state.seen[i]
            for generation in records.pop(name, ()):
                entries = read(generation)  # type: ignore[misc]
                index.merge(entries, pending=False)
                state.records[i].append(generation)
                state.recorded[i] += len(entries)
            index.merge(stored_seen.get(name) or {}, pending=True)
        state.stale += [generation for gens in records.values() for generation in gens]  # flags no longer computed
        columns = tuple(payload["c"])
        same = columns == plan.columns and flag_names == plan.flag_names
        pick_values, pick_flags = plan.picker(columns), plan.picker(flag_names, plan.flag_names)
        segments = [read(generation) for _, generation in sealed]  # type: ignore[misc]
        for t, event_id, values, flags in itertools.chain(*segments, payload["e"]):
            if not same:  # written by a plan of another group set: keep what this plan reads
                values, flags = pick_values(values), pick_flags(flags)
            state.times.append(t)
            state.ids.append(event_id)
            state.frags.append(_frag(t, event_id, values, flags))
            plan.append_contributions(state.contrib, values, flags)
        for bound, generation in sealed:
            state.bounds.append(bound)
            if same:
                state.gens.append(generation)
            else:  # its stored events carry the other plan's columns: write them again as this plan's
                state.gens.append(None)
                state.stale.append(generation)
        return state

    @classmethod
    def decode(cls, plan: GroupPlan, data: bytes | str) -> EntityState:
        """A state from a head value that holds every event (``encode`` of a state never checkpointed)."""
        return cls.from_payload(plan, pydantic_core.from_json(data))

    # -- updates --------------------------------------------------------------------------------------
    def position(self, t: int, event_id: str) -> tuple[int, bool, bool]:
        """(insert position of (t, id), whether that exact event is held, whether any event at t is held)."""
        times, ids = self.times, self.ids
        pos = len(times)
        if pos and t <= times[-1]:
            pos = bisect.bisect_left(times, t)
        at_t = pos < len(times) and times[pos] == t
        while pos < len(times) and times[pos] == t and ids[pos] < event_id:
            pos += 1
        held = pos < len(times) and times[pos] == t and ids[pos] == event_id
        return pos, held, at_t

    def _observe_flags(self, plan: GroupPlan, row: EventRow) -> tuple[bool | None, ...]:
        """The event's first-seen flags (recorded in the indexes; later events it demotes are fixed)."""
        t, event_id, values = row
        flags: list[bool | None] = []
        for i, combo in enumerate(plan.flag_combos(values)):
            if combo is None:
                flags.append(None)
                continue
            first, demoted = self.seen[i].observe(combo, t, event_id, plan.flag_lookbacks[i])
            flags.append(first)
            if demoted:
                self._demote(plan, i, demoted)
        return tuple(flags)

    def _insert(self, plan: GroupPlan, pos: int, row: EventRow, flags: tuple[bool | None, ...]) -> None:
        t, event_id, values = row
        if self.bounds and t < self.bounds[-1]:  # into a sealed segment (also at its last time, not only out of order)
            self._rewrite(t)
        if pos == len(self.times):  # in order: the common case
            self.times.append(t)
            self.ids.append(event_id)
            self.frags.append(_frag(t, event_id, values, flags))
            plan.append_contributions(self.contrib, values, flags)
            return
        if self.slide is not None and pos < self.slide[1]:  # inside a window the running aggregates counted
            self.slide = None
        self.times.insert(pos, t)
        self.ids.insert(pos, event_id)
        self.frags.insert(pos, _frag(t, event_id, values, flags))
        for column, value in zip(self.contrib, plan.contributions(row.values, flags), strict=True):
            column.insert(pos, value)

    def _demote(self, plan: GroupPlan, flag_index: int, event_ids: Iterable[str]) -> None:
        """A late event made these later events not-first-seen: fix their flag and contributions. (They lie after
        the late event, so if running aggregates counted them, they counted its position too: ``_insert`` drops
        them.)"""
        wanted = set(event_ids)
        for pos, event_id in enumerate(self.ids):
            if event_id not in wanted:
                continue
            t, _, values, flags = pydantic_core.from_json(self.frags[pos])
            if flags[flag_index] is not False:
                flags[flag_index] = False
                self.frags[pos] = _frag(t, event_id, values, flags)
                self._rewrite(t)
                for column, value in zip(self.contrib, plan.contributions(values, flags), strict=True):
                    column[pos] = value

    def expire(self, plan: GroupPlan, keep_from: int | None = None) -> None:
        """Drop events no future evaluation can reach and settle the first-seen indexes.

        Evaluations happen at accepted event times (>= watermark - lateness) and at the pending
        points of the current batch (``keep_from``: the earliest), so older events can go.
        """
        if self.wm is None:
            return
        cutoff = self.wm - plan.lateness_us
        oldest_evaluation = cutoff if keep_from is None else min(cutoff, keep_from)
        times = self.times
        if times and times[0] <= oldest_evaluation - plan.max_window_us:
            n = bisect.bisect_right(times, oldest_evaluation - plan.max_window_us)
            for column in (times, self.ids, self.frags, *self.contrib):
                del column[:n]
            while self.bounds and (not times or self.bounds[0] <= times[0]):  # a segment left empty: delete it
                generation = self.gens.pop(0)
                self.bounds.pop(0)
                if generation is not None:
                    self.stale.append(generation)
            slide = self.slide
            if slide is not None:
                if n <= slide[plan.slide_lowest]:  # all before every window: the positions move down
                    for k in range(1, plan.slide_lowest + 1):
                        slide[k] -= n
                else:
                    self.slide = None
        for index, lookback_us in zip(self.seen, plan.flag_lookbacks, strict=True):
            if cutoff >= index.due:  # most updates have nothing to settle: no call
                index.settle(cutoff, lookback_us)


def apply(plan: GroupPlan, state: EntityState, rows: Sequence[EventRow]) -> ApplyResult:
    """Apply one entity's new events (in arrival order); return the points to emit and the late events."""
    state.encoded = None
    late: list[EventRow] = []
    points: dict[int, bool] = {}
    fresh_times: set[int] = set()  # times first held in this batch: never emitted before
    times = state.times
    wm = state.wm
    k = 0  # the in-order prefix, newer than every event seen (the common case), needs none of the checks below
    for row in rows:
        t = row.t
        if wm is not None and t <= wm:
            break
        state._insert(plan, len(times), row, state._observe_flags(plan, row) if plan.flags else ())
        state.wm = wm = t
        points[t] = False
        k += 1
    if k == len(rows):
        state.expire(plan, keep_from=rows[0].t if rows else None)
        return ApplyResult([Point(t, False) for t in points], late, 0)
    fresh_times.update(points)
    duplicates = 0
    earliest_out_of_order: int | None = None
    for row in rows[k:]:
        t = row.t
        if times and t <= times[-1]:  # not after the newest held event: a re-delivery or out of order
            pos, held, at_t = state.position(t, row.event_id)
            if held:
                duplicates += 1
                # re-emit: its first output may have been lost in a crash. Not when it is older than the lateness: the
                # state keeps exact windows for points from there on only (older events may have expired)
                if state.wm is None or t >= state.wm - plan.lateness_us:
                    points[t] = t not in fresh_times
                continue
        else:  # in order: the common case
            pos, at_t = len(times), False
        wm = state.wm
        if wm is not None and t < wm - plan.lateness_us:
            late.append(row)
            continue
        state._insert(plan, pos, row, state._observe_flags(plan, row) if plan.flags else ())
        if not at_t:
            fresh_times.add(t)
        if wm is None or t > wm:
            state.wm = t
        else:
            earliest_out_of_order = t if earliest_out_of_order is None else min(earliest_out_of_order, t)
        points[t] = points.get(t, False) or t not in fresh_times
    if earliest_out_of_order is not None:
        # Every point already emitted at or after the out-of-order event now has different values.
        lo = bisect.bisect_left(times, earliest_out_of_order)
        for t in times[lo:]:
            if t not in fresh_times:
                points[t] = True
    ordered = sorted(points) if len(points) > 1 else list(points)
    state.expire(plan, keep_from=ordered[0] if ordered else None)
    return ApplyResult([Point(t, points[t]) for t in ordered], late, duplicates)


def evaluate_row(plan: GroupPlan, state: EntityState, t: int) -> list[Any]:
    """Every feature of the group as of ``t`` (window ``t - W < event_time <= t``), in ``plan.output_names``
    order: the compute worker's hot path (generated code, ``streaming.compiled_plan``), so no per-point dict
    (the update message names features once).

    A state of ``plan.slide_from`` events or more moves running aggregates from its previous point (points
    come in time order per batch, and batches mostly move forward); a smaller one is cheaper to evaluate
    whole. A point before the previous one (a correction) is evaluated whole and leaves them as they are.
    """
    if state.size < plan.slide_from:
        state.slide = None
        return plan._evaluate(state.times, state.contrib, t)
    slide = state.slide
    if slide is None:
        slide = state.slide = plan.new_slide()
    elif t < slide[0]:
        return plan._evaluate(state.times, state.contrib, t)
    return plan._slide(state.times, state.contrib, t, slide)


def evaluate(plan: GroupPlan, state: EntityState, t: int) -> dict[str, Any]:
    """Every feature of the group as of ``t``, by feature name."""
    return dict(zip(plan.output_names, evaluate_row(plan, state, t), strict=True))

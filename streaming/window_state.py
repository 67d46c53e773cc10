"""The incremental event-time window engine of one windowed feature group (pure: no Faust, no Kafka).

The stream worker keeps one ``EntityState`` per (group, entity) in a Faust table and calls
``apply`` with the entity's new events of a batch, then ``evaluate`` at the points to emit.
Everything here is deterministic and testable against ``features.oracle`` (the truth).

Why per-event contributions and not coarse time buckets: a window evaluated at ``t`` covers
``t - W < event_time <= t`` with microsecond times, so at some future evaluation *every* event
sits on the lower edge of every window; only its exact time decides whether it still counts.
A bucket aggregate can only serve buckets entirely inside a window, so exactness needs the
per-event times anyway. The state therefore keeps, per event, its time, id and one
pre-filtered *contribution* per aggregation spec (the value the aggregation reads, or None when
the event does not match the spec's filters). This is the finest bucketing: distinct counts get
exact value sets, ``last`` gets exact ordering, and out-of-order events are inserted in place.
The state is bounded by the horizon ``max window + allowed lateness``: older events can never
enter an evaluation again and are expired on every update.

Event time and lateness: the entity's *watermark* is the newest event time it has seen. An
event older than ``watermark - allowed_lateness`` is late: not applied, returned to the caller
(who dead-letters and counts it). An accepted out-of-order event changes the values at every
already-emitted point at or after its time, so ``apply`` returns those points too, marked as
corrections; downstream sinks upsert on (entity, event_time). Re-delivered events (same
``event_id``, at-least-once) are not applied twice; their point is re-emitted so an output lost
in a crash is produced again.
"""

from __future__ import annotations

import bisect
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pydantic_core

from features.definitions.filters import Filter, is_missing
from features.definitions.groups import WindowedFeatureGroup
from features.definitions.names import seconds
from streaming.compiled_filters import compile_all
from streaming.first_seen import FirstSeenIndex, combo_key

US_PER_S = 1_000_000
EPOCH = datetime(1970, 1, 1)
STATE_FORMAT = 1


def to_us(value: datetime) -> int:
    """Microseconds since the epoch; aware values are converted to UTC, naive ones are UTC already."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return (value - EPOCH) // timedelta(microseconds=1)


def from_us(value: int) -> datetime:
    """Naive UTC datetime of an epoch-microsecond value (the storage convention)."""
    return EPOCH + timedelta(microseconds=value)


class PlanError(ValueError):
    """A group definition the stream engine cannot compute incrementally (the message says why)."""


_POS_INF = float("inf")  # neutral element of min: never smaller than a real value (identity marks it)
_NEG_INF = float("-inf")  # neutral element of max


@dataclass(frozen=True)
class Spec:
    """One aggregation function over one column with its filters; shared by all its windows."""

    function: str
    column: str | None
    where: tuple[Filter, ...]
    windows_us: tuple[int, ...]  # ascending
    names: tuple[str, ...]  # feature name per window, same order
    integer: bool  # sum of an int64 column stays int


@dataclass(frozen=True)
class FlagPlan:
    name: str
    key_columns: tuple[str, ...]
    lookback_us: int


@dataclass(frozen=True)
class EventRow:
    """One event as the engine sees it: time, id and the values of the columns the group reads."""

    t: int
    event_id: str
    values: tuple[Any, ...]


@dataclass(frozen=True)
class Point:
    """An evaluation to emit: the features as of ``t``; ``correction`` when it may replace an earlier emit."""

    t: int
    correction: bool


@dataclass
class ApplyResult:
    points: list[Point]
    late: list[EventRow]
    duplicates: int


def _contribution(spec: Spec, position: int | None, matches: Callable[[Sequence[Any]], bool]
                  ) -> Callable[[Sequence[Any]], Any]:
    """What one event adds to ``spec``, encoded so evaluation runs in C over list slices.

    Non-matching events store the function's neutral element: 0 for count and sum (``sum`` of a
    slice), +inf/-inf for min/max, None for the others (mean, distinct, last skip None).
    """
    function = spec.function
    if function == "count":
        return lambda row: 1 if matches(row) else 0
    assert position is not None
    neutral: Any = {"sum": 0 if spec.integer else 0.0, "min": _POS_INF, "max": _NEG_INF}.get(function)

    def contribution(row: Sequence[Any]) -> Any:
        if not matches(row):
            return neutral
        value = row[position]
        return neutral if is_missing(value) else value

    return contribution


def _extreme(pick: Callable[..., Any], neutral: float) -> Callable[[list[Any]], Any]:
    def extreme(seq: list[Any]) -> Any:
        best = pick(seq, default=neutral)
        if best == neutral:  # all neutral, or a genuine infinity: decide on the real values only
            real = [v for v in seq if v is not neutral]
            return pick(real) if real else None
        return best
    return extreme


# Windows of one spec are nested (ascending lengths, same right edge), so sums, counts, distinct sets and "last"
# grow outward: each event of the largest window is visited once instead of once per window. Float sums then add
# partial sums (rounding differs from a left-to-right sum in the last bits: within the oracle's 1e-9 tolerance).
WindowEvaluator = Callable[[list[Any], list[int], int], list[Any]]


def _nested_sum(column: list[Any], lows: list[int], hi: int) -> list[Any]:
    out, total, edge = [], 0, hi
    for lo in lows:
        total += sum(column[lo:edge])
        edge = lo
        out.append(total)
    return out


def _nested_float_sum(column: list[Any], lows: list[int], hi: int) -> list[Any]:
    return [float(v) for v in _nested_sum(column, lows, hi)]


def _nested_mean(column: list[Any], lows: list[int], hi: int) -> list[Any]:
    out, total, n, edge = [], 0.0, 0, hi
    for lo in lows:
        values = [v for v in column[lo:edge] if v is not None]
        total += sum(values)
        n += len(values)
        edge = lo
        out.append(total / n if n else None)
    return out


def _nested_distinct(column: list[Any], lows: list[int], hi: int) -> list[Any]:
    out, seen, edge = [], set(), hi
    for lo in lows:
        seen.update(column[lo:edge])
        edge = lo
        out.append(len(seen) - (None in seen))
    return out


def _nested_last(column: list[Any], lows: list[int], hi: int) -> list[Any]:
    i, floor = hi - 1, lows[-1]
    while i >= floor and column[i] is None:
        i -= 1
    return [column[i] if i >= lo else None for lo in lows]


def _window_evaluator(spec: Spec) -> WindowEvaluator:
    """Values of ``spec`` for all its windows (``lows``: the windows' first positions, smallest window first)."""
    if spec.function == "count" or (spec.function == "sum" and spec.integer):
        return _nested_sum
    nested = {"sum": _nested_float_sum, "mean": _nested_mean, "count_distinct": _nested_distinct,
              "last": _nested_last}.get(spec.function)
    if nested is not None:
        return nested
    # min, max: few features; one slice per window keeps the neutral-element logic of ``_extreme`` in one place
    aggregate = {"min": _extreme(min, _POS_INF), "max": _extreme(max, _NEG_INF)}[spec.function]
    return lambda column, lows, hi: [aggregate(column[lo:hi]) for lo in lows]


class GroupPlan:
    """What the engine needs from a ``WindowedFeatureGroup``, compiled once per worker."""

    def __init__(self, group: WindowedFeatureGroup, allowed_lateness: timedelta) -> None:
        if not isinstance(group, WindowedFeatureGroup):
            raise PlanError(f"feature group {getattr(group, 'name', group)!r} is not a windowed (stream) group")
        if allowed_lateness < timedelta(0):
            raise PlanError("allowed lateness must not be negative")
        self.group = group
        self.name = group.name
        self.version = group.version
        self.join_key = group.entity.join_key
        self.entity = group.entity.name
        self.source_topic = group.source.topic
        self.lateness_us = allowed_lateness // timedelta(microseconds=1)

        flags = []
        for name in group.used_first_seen():
            derived = group.source.derived(name)
            assert derived is not None
            if self.join_key not in derived.keys:
                # The flag would need every event of the key combination, across entities: state this
                # worker's partition does not hold. Refuse at start-up instead of computing wrong values.
                raise PlanError(f"feature group {group.name!r}: first-seen flag {name!r} keys {derived.keys} do not "
                                f"include the entity key {self.join_key!r}, so the stream engine cannot keep it")
            flags.append(FlagPlan(name, derived.keys, seconds(derived.lookback) * US_PER_S))
        self.flags: tuple[FlagPlan, ...] = tuple(flags)
        flag_names = [f.name for f in self.flags]

        needed: set[str] = set()
        for agg in group.aggregations:
            if agg.column is not None and agg.column not in flag_names:
                needed.add(agg.column)
            needed.update(f.field for f in agg.where if f.field not in flag_names)
        for flag in self.flags:
            needed.update(flag.key_columns)
        needed.discard(group.source.timestamp_column)
        needed.discard(group.source.id_column)
        self.columns: tuple[str, ...] = tuple(sorted(needed))
        # a "full row" is the event's values followed by its first-seen flags
        positions = {c: i for i, c in enumerate((*self.columns, *flag_names))}
        self._flag_keys = [tuple(positions[k] for k in f.key_columns) for f in self.flags]
        getter = operator.attrgetter(*self.columns) if self.columns else None
        self._from_object: Callable[[Any], tuple[Any, ...]] = (
            (lambda record: ()) if getter is None else
            (lambda record: (getter(record),)) if len(self.columns) == 1 else getter)  # type: ignore[assignment]

        columns = group.source.all_columns
        specs = []
        for agg in group.aggregations:
            windows = sorted(agg.windows)
            specs.append(Spec(
                function=agg.function, column=agg.column, where=agg.where,
                windows_us=tuple(seconds(w) * US_PER_S for w in windows),
                names=tuple(agg.feature_name(w) for w in windows),
                integer=agg.column is not None and columns.get(agg.column) == "int64",
            ))
        self.specs: tuple[Spec, ...] = tuple(specs)
        self._contributions = [
            _contribution(spec, positions.get(spec.column) if spec.column else None, compile_all(spec.where, positions))
            for spec in self.specs]
        self._evaluators = [_window_evaluator(spec) for spec in self.specs]
        self.feature_names: tuple[str, ...] = tuple(f.name for f in group.features)
        # evaluation order (spec by spec, windows ascending): what ``evaluate_row`` returns
        self.output_names: tuple[str, ...] = tuple(name for spec in self.specs for name in spec.names)
        self._spec_windows = [spec.windows_us for spec in self.specs]
        self.window_lengths: tuple[int, ...] = tuple(sorted({w for spec in self.specs for w in spec.windows_us}))
        self.max_window_us = max(s.windows_us[-1] for s in self.specs)
        self.horizon_us = self.max_window_us + self.lateness_us

    # -- rows ------------------------------------------------------------------------------------------
    def row(self, t: int, event_id: str, record: Mapping[str, Any] | Any) -> EventRow:
        """An ``EventRow`` from a mapping or an object with the source's attributes (a pydantic event)."""
        if type(record) is dict or isinstance(record, Mapping):  # the ABC check alone costs ~5 us on a model
            return EventRow(t, event_id, tuple(record.get(c) for c in self.columns))
        return EventRow(t, event_id, self._from_object(record))

    def contributions(self, values: Sequence[Any], flags: Sequence[bool | None]) -> list[Any]:
        """Per spec: what this event adds (the spec's neutral element when it does not count)."""
        full = (*values, *flags)
        return [contribution(full) for contribution in self._contributions]

    def flag_combo(self, flag_index: int, values: Sequence[Any]) -> str | None:
        keys = [values[i] for i in self._flag_keys[flag_index]]
        return None if any(is_missing(k) for k in keys) else combo_key(keys)


class EntityState:
    """Events of one entity inside the horizon, sorted by (time, id), plus first-seen indexes."""

    __slots__ = ("contrib", "flags", "ids", "seen", "times", "values", "wm")

    def __init__(self, plan: GroupPlan) -> None:
        self.wm: int | None = None
        self.times: list[int] = []
        self.ids: list[str] = []
        self.values: list[tuple[Any, ...]] = []
        self.flags: list[list[bool | None]] = []
        self.contrib: list[list[Any]] = [[] for _ in plan.specs]  # column per spec, aligned with times
        self.seen: list[FirstSeenIndex] = [FirstSeenIndex() for _ in plan.flags]

    @property
    def size(self) -> int:
        """Events held (deliberately not ``__len__``: an empty state must still be truthy)."""
        return len(self.times)

    @property
    def empty(self) -> bool:
        return not self.times and not any(s.entries for s in self.seen)

    # -- serialization (Faust table values) -------------------------------------------------------------
    def to_payload(self) -> dict[str, Any]:
        """JSON-ready form; contributions are derived, so they are recomputed on load, not stored."""
        return {"f": STATE_FORMAT, "wm": self.wm, "t": self.times, "i": self.ids,
                "v": self.values, "g": self.flags, "s": [s.entries for s in self.seen]}

    @classmethod
    def from_payload(cls, plan: GroupPlan, payload: Mapping[str, Any]) -> EntityState:
        if payload.get("f") != STATE_FORMAT:
            raise ValueError(f"state format {payload.get('f')!r} is not {STATE_FORMAT}")
        state = cls(plan)
        state.wm = payload["wm"]
        state.times = list(payload["t"])
        state.ids = list(payload["i"])
        state.values = [tuple(v) for v in payload["v"]]
        state.flags = [list(f) for f in payload["g"]]
        state.seen = [FirstSeenIndex(entries) for entries in payload["s"]]
        for values, flags in zip(state.values, state.flags, strict=True):
            for column, value in zip(state.contrib, plan.contributions(values, flags), strict=True):
                column.append(value)
        return state

    def encode(self) -> bytes:
        return pydantic_core.to_json(self.to_payload())

    @classmethod
    def decode(cls, plan: GroupPlan, data: bytes | str) -> EntityState:
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

    def _insert(self, plan: GroupPlan, pos: int, row: EventRow, flags: list[bool | None]) -> None:
        self.times.insert(pos, row.t)
        self.ids.insert(pos, row.event_id)
        self.values.insert(pos, row.values)
        self.flags.insert(pos, flags)
        for column, value in zip(self.contrib, plan.contributions(row.values, flags), strict=True):
            column.insert(pos, value)

    def _demote(self, plan: GroupPlan, flag_index: int, event_ids: Iterable[str]) -> None:
        """A late event made these later events not-first-seen: fix their flag and contributions."""
        wanted = set(event_ids)
        for pos, event_id in enumerate(self.ids):
            if event_id in wanted and self.flags[pos][flag_index] is not False:
                self.flags[pos][flag_index] = False
                for column, value in zip(self.contrib, plan.contributions(self.values[pos], self.flags[pos]),
                                         strict=True):
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
        n = bisect.bisect_right(self.times, oldest_evaluation - plan.max_window_us)
        if n:
            for column in (self.times, self.ids, self.values, self.flags, *self.contrib):
                del column[:n]
        for index, flag in zip(self.seen, plan.flags, strict=True):
            index.settle(cutoff, flag.lookback_us)


def apply(plan: GroupPlan, state: EntityState, rows: Sequence[EventRow]) -> ApplyResult:
    """Apply one entity's new events (in arrival order); return the points to emit and the late events."""
    late: list[EventRow] = []
    points: dict[int, bool] = {}
    fresh_times: set[int] = set()  # times first held in this batch: never emitted before
    duplicates = 0
    earliest_out_of_order: int | None = None
    for row in rows:
        pos, held, at_t = state.position(row.t, row.event_id)
        if held:
            duplicates += 1
            points[row.t] = row.t not in fresh_times  # re-emit: its first output may have been lost in a crash
            continue
        wm = state.wm
        if wm is not None and row.t < wm - plan.lateness_us:
            late.append(row)
            continue
        flags: list[bool | None] = []
        for i, (flag, index) in enumerate(zip(plan.flags, state.seen, strict=True)):
            combo = plan.flag_combo(i, row.values)
            if combo is None:
                flags.append(None)
                continue
            first, demoted = index.observe(combo, row.t, row.event_id, flag.lookback_us)
            flags.append(first)
            if demoted:
                state._demote(plan, i, demoted)
        state._insert(plan, pos, row, flags)
        if not at_t:
            fresh_times.add(row.t)
        if wm is not None and row.t <= wm:
            earliest_out_of_order = row.t if earliest_out_of_order is None else min(earliest_out_of_order, row.t)
        if wm is None or row.t > wm:
            state.wm = row.t
        points[row.t] = points.get(row.t, False) or row.t not in fresh_times
    if earliest_out_of_order is not None:
        # Every point already emitted at or after the out-of-order event now has different values.
        lo = bisect.bisect_left(state.times, earliest_out_of_order)
        for t in state.times[lo:]:
            if t not in fresh_times:
                points[t] = True
    ordered = sorted(points)
    state.expire(plan, keep_from=ordered[0] if ordered else None)
    return ApplyResult([Point(t, points[t]) for t in ordered], late, duplicates)


def evaluate_row(plan: GroupPlan, state: EntityState, t: int) -> list[Any]:
    """Every feature of the group as of ``t`` (window ``t - W < event_time <= t``), in ``plan.output_names``
    order: the compute worker's hot path, so no per-point dict (the update message names features once)."""
    times = state.times
    hi = bisect.bisect_right(times, t)
    right = bisect.bisect_right
    lows = {window: right(times, t - window, 0, hi) for window in plan.window_lengths}
    out: list[Any] = []
    for column, evaluator, windows in zip(state.contrib, plan._evaluators, plan._spec_windows, strict=True):
        out += evaluator(column, [lows[w] for w in windows], hi)
    return out


def evaluate(plan: GroupPlan, state: EntityState, t: int) -> dict[str, Any]:
    """Every feature of the group as of ``t``, by feature name."""
    return dict(zip(plan.output_names, evaluate_row(plan, state, t), strict=True))

"""Stream feature computation over batches of Kafka records (the Faust agents are thin shells over this).

Two stages, because Kafka partitions by account but some groups are keyed by device, IP,
counterparty or payment method:

1. ``process_events`` (source topics ``events.*``, key = account): validate each record (bad
   ones go to ``dlq.<topic>``), update the account-keyed groups, and forward every event that
   has a non-account entity key to the re-key topic as a row ``[<entity>:<key>, source topic,
   event_time_us, event_id, [columns stage 2 reads]]``, packed by the row key's partition.
2. ``process_rekeyed`` (the re-key topic): update the groups of those entities. A late event
   is dead-lettered with the forwarded columns (stage 2 never sees the original record).

Per batch: events are grouped by entity, each group's engine (``streaming.window_state``)
applies the entity's events at once and is evaluated only at the points that changed, and the
entity's state is written back once. Messages are *packed* per batch and partition: one
``features.<group>`` message carries every changed (entity, event time) of the batch's
entities on one partition (``streaming.updates``), one re-key message every forwarded event
bound for one partition of the re-key topic, with only the columns stage 2 reads. Per-message
costs (produce calls, Faust's per-record machinery, JSON framing) were most of a worker's time
when every update and forward was its own message (~5 per input event).

Outputs go through one confluent-kafka producer that the caller flushes before the batch's
offsets may be committed: together with Faust's at-least-once commits that makes every output
survive a crash (a re-delivered event re-emits its point; state updates are idempotent on
``event_id``). A pack's rows all hash (murmur2, like Faust and the producer) to the partition
of the pack's key, so one entity's messages stay ordered on one partition.
"""

from __future__ import annotations

import gc
import logging
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pydantic_core

from events.dlq import DeadLetterPublisher, EventGate, prefixed_topics
from events.producer import EventProducer
from riskpipe.settings import Settings
from streaming.state_table import KeyValueTable, StateTable
from streaming.status import WorkerStatus
from streaming.topology import key_partition, physical, rekey_topic, update_topic
from streaming.updates import Row, encode_rows, pack_rows
from streaming.window_state import EntityState, EventRow, GroupOutput, GroupPlan, apply, evaluate_row, from_us, to_us

log = logging.getLogger(__name__)

LATE_REASON = "late_event"
REKEY_FORMAT = 1


@dataclass(frozen=True, slots=True)
class Consumed:
    """A consumed record in the shape ``events.dlq.Record`` expects (Faust events are adapted to it)."""

    _topic: str
    _partition: int | None
    _offset: int | None
    _key: bytes | None
    _value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int | None:
        return self._partition

    def offset(self) -> int | None:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def header(self, name: str) -> bytes | None:
        return next((v for k, v in self.headers if k == name), None)


@dataclass(frozen=True, slots=True)
class LateRejection:
    """Dead-letter reason of an event older than the entity's watermark minus the allowed lateness."""

    message: str
    field: str | None = "event_time"
    reason: str = LATE_REASON


@dataclass(slots=True)
class _Pending:
    topic: str  # physical source topic
    t: int
    event_id: str
    record: Any  # pydantic event (stage 1) or the forwarded column values (stage 2)
    raw: Consumed | None  # the source record (stage 1); stage 2 dead-letters the forwarded columns instead
    columns: tuple[str, ...] = ()  # stage 2: names of ``record``'s values


class StreamCompute:
    """The two compute stages for a set of group plans; no Faust import, so tests drive it directly."""

    def __init__(self, settings: Settings, plans: Sequence[GroupPlan], producer: EventProducer,
                 status: WorkerStatus, account_table: KeyValueTable, entity_table: KeyValueTable) -> None:
        self.settings = settings
        self.producer = producer
        self.status = status
        self.gate = EventGate(DeadLetterPublisher(producer), prefixed_topics(settings.topic_prefix))
        self.rekey_topic = rekey_topic(settings)
        self._out_topic = {out.name: update_topic(settings, out.name) for p in plans for out in p.outputs}
        account = [p for p in plans if p.join_key == "account_id"]
        other = [p for p in plans if p.join_key != "account_id"]
        segments = settings.stream_segment_events
        self.accounts = StateTable(account_table, {p.name: p for p in account}, segment_events=segments)
        self.entities = StateTable(entity_table, {p.name: p for p in other}, segment_events=segments)
        self._account_plans: dict[str, list[GroupPlan]] = defaultdict(list)
        for p in account:
            self._account_plans[physical(settings, p.source_topic)].append(p)
        # stage 2: (entity name, physical source topic) -> plans; stage 1 forwards (entity, join key) per topic
        self._entity_plans: dict[tuple[str, str], list[GroupPlan]] = defaultdict(list)
        forwards: dict[str, dict[str, str]] = defaultdict(dict)
        for p in other:
            topic = physical(settings, p.source_topic)
            self._entity_plans[(p.entity, topic)].append(p)
            forwards[topic][p.entity] = p.join_key
        self._forwards = {t: sorted(f.items()) for t, f in forwards.items()}
        # stage 1 forwards only the columns the stage-2 plans of the event's topic read
        self._forward_columns = {t: tuple(sorted({c for ps in self._entity_plans.values() for p in ps
                                                  if physical(settings, p.source_topic) == t for c in p.columns}))
                                 for t in forwards}
        self._partitions = settings.topic_partitions
        # an event late for several groups of one entity is dead-lettered once per batch, not once per group
        self._dead_lettered: set[tuple[str, str]] = set()
        # per plan and partition, each output's update rows of the batch (emptied when a batch begins): built once, as
        # looking the lists up per entity and batch was a measurable share of stage 2
        self._out: dict[str, list[list[tuple[list[Row], GroupOutput]]]] = {
            p.name: [[([], out) for out in p.outputs] for _ in range(self._partitions)] for p in plans}

    # -- stage 1 ------------------------------------------------------------------------------------
    def process_events(self, records: Sequence[Consumed]) -> None:
        """Validate, update account-keyed groups, forward to the re-key topic."""
        by_account: dict[str, dict[str, list[_Pending]]] = defaultdict(lambda: defaultdict(list))  # -> topic -> events
        forwards: dict[int, list[Row]] = defaultdict(list)  # re-key partition -> rows
        self._begin_batch()
        counters = self.status.counters
        counters["events"] += len(records)
        admit, account_topics, newest = self.gate.admit, self._account_plans, None
        for rec in records:
            event = admit(rec)
            if event is None:
                counters["rejected"] += 1
                continue
            topic = rec.topic()
            t = to_us(event.event_time)
            if newest is None or t > newest:
                newest = t
            targets = self._forwards.get(topic)
            if targets:
                values = [getattr(event, c) for c in self._forward_columns[topic]]
                for entity, join_key in targets:
                    value = getattr(event, join_key, None)
                    if value is not None:
                        table_key = f"{entity}:{value}"
                        forwards[key_partition(table_key.encode(), self._partitions)].append(
                            [table_key, topic, t, event.event_id, values])
            if topic in account_topics:
                by_account[event.account_id][topic].append(_Pending(topic, t, event.event_id, event, rec))
        if newest is not None:
            self.status.saw_event_time(newest)
        for rows in forwards.values():
            counters["forwarded"] += len(rows)
            for pack in pack_rows(rows):
                counters["forward_messages"] += 1
                columns = {topic: self._forward_columns[topic] for topic in {row[1] for row in pack}}
                self.producer.produce_raw(self.rekey_topic, pydantic_core.to_json(
                    {"format": REKEY_FORMAT, "columns": columns, "rows": pack}), key=pack[0][0].encode())
        for account, by_topic in by_account.items():
            states = self.accounts.load(account)
            for topic, pending in by_topic.items():
                for plan in account_topics[topic]:
                    self._update(plan, states, account, pending)
            self.accounts.store(account, states)
        self._emit()

    # -- stage 2 ------------------------------------------------------------------------------------
    def process_rekeyed(self, records: Sequence[Consumed]) -> None:
        """Update the groups keyed by devices, IPs, counterparties and payment methods."""
        by_entity: dict[str, dict[str, list[_Pending]]] = defaultdict(lambda: defaultdict(list))  # -> topic -> events
        self._begin_batch()
        counters = self.status.counters
        for rec in records:
            try:
                pack = pydantic_core.from_json(rec.value() or b"")
                if pack.get("format") != REKEY_FORMAT:
                    raise ValueError(f"re-key format {pack.get('format')!r} is not {REKEY_FORMAT}")
                columns = {topic: tuple(names) for topic, names in pack["columns"].items()}
                rows = pack["rows"]
                for table_key, topic, t, event_id, values in rows:
                    by_entity[table_key][topic].append(_Pending(topic, t, event_id, values, None, columns[topic]))
            except (ValueError, KeyError, TypeError, AttributeError) as exc:  # written by stage 1: a bug, not data
                log.error("unreadable re-key pack; its events are skipped",
                          extra={"partition": rec.partition(), "offset": rec.offset(), "error": str(exc)})
                counters["rekey_errors"] += 1
                continue
            counters["rekeyed"] += len(rows)
        for table_key, by_topic in by_entity.items():
            entity, _, value = table_key.partition(":")
            states = self.entities.load(table_key)
            for topic, pending in by_topic.items():
                for plan in self._entity_plans.get((entity, topic), ()):
                    self._update(plan, states, value, pending)
            self.entities.store(table_key, states)
        self._emit()

    # -- shared -------------------------------------------------------------------------------------
    def _begin_batch(self) -> None:
        self._dead_lettered.clear()
        for rows, _ in self._row_lists():
            rows.clear()

    def _row_lists(self) -> Iterator[tuple[list[Row], GroupOutput]]:
        """Every (plan, partition, output) list of update rows, with its output."""
        for by_partition in self._out.values():
            for outs in by_partition:
                yield from outs

    def _update(self, plan: GroupPlan, states: dict[str, EntityState], key: str, pending: list[_Pending]) -> None:
        state = states.get(plan.name)
        if state is None:
            state = states[plan.name] = EntityState(plan)
        if pending[0].raw is not None:  # stage 1: validated events
            values_of = plan.values_of
            rows = [EventRow(p.t, p.event_id, values_of(p.record)) for p in pending]
        else:  # stage 2: forwarded columns (named per pack: workers of two versions may forward different ones)
            rows = []
            names: tuple[str, ...] | None = None
            for p in pending:
                if p.columns is not names:  # one lookup per pack, not per row
                    names, pick = p.columns, plan.picker(p.columns)
                rows.append(EventRow(p.t, p.event_id, pick(p.record)))
        result = apply(plan, state, rows)
        counters = self.status.counters
        if result.late:
            late_ids = {r.event_id for r in result.late}
            for p in pending:
                if p.event_id in late_ids:
                    self._dead_letter_late(plan, state, p, key)
            counters["late"] += len(result.late)
        if result.duplicates:  # at-least-once re-delivery (after a restart or rebalance): re-emitted, not re-counted
            counters["duplicates"] += result.duplicates
            log.info("re-delivered events: groups=%s entity=%s events=%d", plan.group_names, key, result.duplicates,
                     extra={"groups": plan.group_names, "entity_key": key, "events": result.duplicates})
        if not result.points:
            return
        partition = key_partition(key.encode(), self._partitions)
        outs = self._out[plan.name][partition]
        whole = len(outs) == 1  # one group: its rows take the evaluation as it is
        corrections = 0
        for t, correction in result.points:
            values = evaluate_row(plan, state, t)
            for rows, out in outs:
                rows.append([key, t, correction, values if whole else values[out.start:out.stop]])
            corrections += correction
        counters["updates"] += len(result.points) * len(outs)
        counters["corrections"] += corrections * len(outs)

    def _emit(self) -> None:
        """One message per (group, partition) and batch (split at ``MAX_ROWS_PER_MESSAGE`` rows)."""
        now = time.time()
        for rows, out in self._row_lists():
            for pack in pack_rows(rows):
                self.producer.produce_raw(self._out_topic[out.name], encode_rows(
                    out.name, out.version, out.join_key, out.names, pack, now), key=pack[0][0].encode())

    def _dead_letter_late(self, plan: GroupPlan, state: EntityState, p: _Pending, key: str) -> None:
        entity_key = p.raw.key() if p.raw is not None else key.encode()
        marker = ((entity_key or b"").decode("utf-8", "replace"), p.event_id)
        if marker in self._dead_lettered:
            return
        self._dead_lettered.add(marker)
        behind_s = ((state.wm or p.t) - p.t) / 1e6
        lateness_s = plan.lateness_us / 1e6
        rejection = LateRejection(f"groups {', '.join(plan.group_names)}: event_time is {behind_s:.3f}s behind the "
                                  f"entity's newest event, more than the allowed lateness {lateness_s:.0f}s")
        if p.raw is not None:
            self.gate.dlq.publish(p.topic, p.raw.value(), rejection, key=entity_key,  # type: ignore[arg-type]
                                  partition=p.raw.partition(), offset=p.raw.offset())
            return
        # stage 2 holds the forwarded columns only: dead-letter those (with id and time), keyed by the entity
        value = {"event_id": p.event_id, "event_time": f"{from_us(p.t).isoformat()}Z", plan.join_key: key,
                 **dict(zip(p.columns, p.record, strict=True))}
        self.gate.dlq.publish(p.topic, pydantic_core.to_json(value), rejection, key=entity_key)  # type: ignore[arg-type]


def flush_outputs(producer: EventProducer, timeout: float = 60.0) -> None:
    """Block until every output of the batch is acknowledged (before its offsets may be committed)."""
    producer.flush(timeout)



def tune_gc() -> None:
    """Make full garbage collections rare in a compute process (call once, after start-up).

    Batches allocate and drop hundreds of thousands of small objects (rows, lists, JSON pieces) while
    the entity states and the imported modules stay alive: with CPython's default thresholds the
    collector kept re-scanning those long-lived objects, 20-28% of the compute stages' CPU. Freezing
    what exists after start-up takes it out of every scan, and the larger young-generation threshold
    makes collections rarer; reference counting frees the batches' garbage anyway (no cycles).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)

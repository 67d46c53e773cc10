"""Stream feature computation over batches of Kafka records (the Faust agents are thin shells over this).

Two stages, because Kafka partitions by account but some groups are keyed by device, IP,
counterparty or payment method:

1. ``process_events`` (source topics ``events.*``, key = account): validate each record (bad
   ones go to ``dlq.<topic>``), update the account-keyed groups, and forward every event that
   has a non-account entity key to the re-key topic, keyed ``<entity>:<key>``.
2. ``process_rekeyed`` (the re-key topic): update the groups of those entities.

Per batch: events are grouped by entity, each group's engine (``streaming.window_state``)
applies the entity's events at once and is evaluated only at the points that changed, the
entity's state is written back once, and one ``features.<group>`` message goes out per changed
(entity, event time). Outputs go through one confluent-kafka producer (murmur2 partitioner,
like Faust) that the caller flushes before the batch's offsets may be committed: together
with Faust's at-least-once commits that makes every output survive a crash (a re-delivered
event re-emits its point; state updates are idempotent on ``event_id``).
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from events.dlq import DeadLetterPublisher, EventGate, prefixed_topics
from events.producer import EventProducer
from features.definitions.sources import SOURCES
from riskpipe.settings import Settings
from streaming.state_table import KeyValueTable, StateTable
from streaming.status import WorkerStatus
from streaming.topology import physical, rekey_topic, update_topic
from streaming.updates import FeatureUpdate, encode_update
from streaming.window_state import EntityState, GroupPlan, apply, evaluate, to_us

log = logging.getLogger(__name__)

SOURCE_HEADER = "rp.source.topic"
LATE_REASON = "late_event"


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


@dataclass
class _Pending:
    topic: str  # physical source topic
    t: int
    record: Any  # pydantic event (stage 1) or dict (stage 2)
    raw: Consumed


class StreamCompute:
    """The two compute stages for a set of group plans; no Faust import, so tests drive it directly."""

    def __init__(self, settings: Settings, plans: Sequence[GroupPlan], producer: EventProducer,
                 status: WorkerStatus, account_table: KeyValueTable, entity_table: KeyValueTable) -> None:
        self.settings = settings
        self.producer = producer
        self.status = status
        self.gate = EventGate(DeadLetterPublisher(producer), prefixed_topics(settings.topic_prefix))
        self.rekey_topic = rekey_topic(settings)
        self._out_topic = {p.name: update_topic(settings, p.name) for p in plans}
        account = [p for p in plans if p.join_key == "account_id"]
        other = [p for p in plans if p.join_key != "account_id"]
        self.accounts = StateTable(account_table, {p.name: p for p in account})
        self.entities = StateTable(entity_table, {p.name: p for p in other})
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
        # stage-2 records are JSON dicts: cast float columns back (JSON may carry 5 for 5.0)
        self._float_columns = {physical(settings, s.topic): [c for c, k in s.columns.items() if k == "float64"]
                               for s in SOURCES.values()}
        # an event late for several groups of one entity is dead-lettered once per batch, not once per group
        self._dead_lettered: set[tuple[str, str]] = set()

    # -- stage 1 ------------------------------------------------------------------------------------
    def process_events(self, records: Sequence[Consumed]) -> None:
        """Validate, update account-keyed groups, forward to the re-key topic."""
        by_account: dict[str, list[_Pending]] = defaultdict(list)
        self._dead_lettered.clear()
        counters = self.status.counters
        for rec in records:
            counters["events"] += 1
            event = self.gate.admit(rec)
            if event is None:
                counters["rejected"] += 1
                continue
            topic = rec.topic()
            t = to_us(event.event_time)
            self.status.saw_event_time(t)
            for entity, join_key in self._forwards.get(topic, ()):
                value = getattr(event, join_key, None)
                if value is not None:
                    self.producer.produce_raw(self.rekey_topic, rec.value(), key=f"{entity}:{value}".encode(),
                                              headers=[(SOURCE_HEADER, topic.encode())])
                    counters["forwarded"] += 1
            if topic in self._account_plans:
                by_account[event.account_id].append(_Pending(topic, t, event, rec))
        for account, pending in by_account.items():
            states = self.accounts.load(account)
            topics = {p.topic for p in pending}
            for topic in topics:
                for plan in self._account_plans[topic]:
                    self._update(plan, states, account, [p for p in pending if p.topic == topic])
            self.accounts.store(account, states)

    # -- stage 2 ------------------------------------------------------------------------------------
    def process_rekeyed(self, records: Sequence[Consumed]) -> None:
        """Update the groups keyed by devices, IPs, counterparties and payment methods."""
        by_entity: dict[str, list[_Pending]] = defaultdict(list)
        self._dead_lettered.clear()
        for rec in records:
            self.status.counters["rekeyed"] += 1
            key = (rec.key() or b"").decode("utf-8", "replace")
            source = (rec.header(SOURCE_HEADER) or b"").decode()
            try:
                row = json.loads(rec.value() or b"")
                for column in self._float_columns.get(source, ()):
                    if row.get(column) is not None:
                        row[column] = float(row[column])
                t = to_us(datetime.fromisoformat(row["event_time"].replace("Z", "+00:00")))
            except (ValueError, KeyError, TypeError, AttributeError) as exc:  # validated upstream: a bug, not data
                log.error("unreadable re-keyed record", extra={"key": key, "error": str(exc)})
                self.status.counters["rekey_errors"] += 1
                continue
            by_entity[key].append(_Pending(source, t, row, rec))
        for table_key, pending in by_entity.items():
            entity, _, value = table_key.partition(":")
            states = self.entities.load(table_key)
            for topic in {p.topic for p in pending}:
                for plan in self._entity_plans.get((entity, topic), ()):
                    self._update(plan, states, value, [p for p in pending if p.topic == topic])
            self.entities.store(table_key, states)

    # -- shared -------------------------------------------------------------------------------------
    def _update(self, plan: GroupPlan, states: dict[str, EntityState], key: str, pending: list[_Pending]) -> None:
        state = states.get(plan.name)
        if state is None:
            state = states[plan.name] = EntityState(plan)
        rows = [plan.row(p.t, _event_id(p.record), p.record) for p in pending]
        result = apply(plan, state, rows)
        counters = self.status.counters
        if result.late:
            late_ids = {r.event_id for r in result.late}
            for p in pending:
                if _event_id(p.record) in late_ids:
                    self._dead_letter_late(plan, state, p)
            counters["late"] += len(result.late)
        if result.duplicates:  # at-least-once re-delivery (after a restart or rebalance): re-emitted, not re-counted
            counters["duplicates"] += result.duplicates
            log.info("re-delivered events: group=%s entity=%s events=%d", plan.name, key, result.duplicates,
                     extra={"group": plan.name, "entity_key": key, "events": result.duplicates})
        out_topic = self._out_topic[plan.name]
        key_bytes = key.encode()
        now = time.time()
        for point in result.points:
            update = FeatureUpdate(plan.name, plan.version, plan.join_key, key, point.t,
                                   evaluate(plan, state, point.t), point.correction, now)
            self.producer.produce_raw(out_topic, encode_update(update), key=key_bytes)
        counters["updates"] += len(result.points)
        counters["corrections"] += sum(1 for p in result.points if p.correction)

    def _dead_letter_late(self, plan: GroupPlan, state: EntityState, p: _Pending) -> None:
        marker = ((p.raw.key() or b"").decode("utf-8", "replace"), _event_id(p.record))
        if marker in self._dead_lettered:
            return
        self._dead_lettered.add(marker)
        behind_s = ((state.wm or p.t) - p.t) / 1e6
        rejection = LateRejection(f"group {plan.name}: event_time is {behind_s:.3f}s behind the entity's newest "
                                  f"event, more than the allowed lateness {plan.lateness_us / 1e6:.0f}s")
        self.gate.dlq.publish(p.topic, p.raw.value(), rejection, key=p.raw.key(),  # type: ignore[arg-type]
                              partition=p.raw.partition(), offset=p.raw.offset())


def _event_id(record: Any) -> str:
    return record["event_id"] if isinstance(record, Mapping) else record.event_id


def flush_outputs(producer: EventProducer, timeout: float = 60.0) -> None:
    """Block until every output of the batch is acknowledged (before its offsets may be committed)."""
    producer.flush(timeout)


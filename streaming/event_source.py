"""Stage 1's input: ``events.*`` read in batches by librdkafka, released in time order across partitions.

Why not a Faust stream: Faust's per-record path (fetcher thread, conductor, channel queue,
stream iterator, acks, sensors) costs ~170 us of CPU per record on this machine, measured with an
agent that does nothing but ``take_events`` (``benchmarks/bench_stream.py``: ``faust_noop``): a
ceiling of ~6k events/s before any feature is computed. librdkafka's batch ``consume`` costs a few
microseconds per record. The source topics are the only per-event topics of the worker (the
re-key topic carries packs of up to 500 rows), so only they bypass Faust; everything else (tables,
changelogs, recovery, the stage-2 agent, the group membership that decides which partitions this
worker owns) stays Faust's.

Partitions follow Faust: the worker processes partition ``p`` of every events topic exactly when
Faust made it the active owner of partition ``p`` of the account-state changelog (the topics are
co-partitioned: same count, same murmur2 keys), and only once Faust finished recovering the table.
Offsets are committed under their own group (``events_group_id``) with manual assignment, after a
batch's outputs and changelog records are acknowledged: at-least-once, like before.

Time alignment: records are released in timestamp order across partitions (producers stamp events
with their event time), never more than ``slack`` ahead of a partition that may still hold unread
records on the broker. A replay (the stack's warm-up, a backfill through Kafka) produces days of
history in minutes: drained partition by partition, the stage-2 entities (a device used by accounts
on several partitions) saw event times jump back by hours and dead-lettered a third of the warm-up
as late. The slack (half the allowed lateness) keeps that skew inside the lateness while live
traffic, where every partition is within seconds of the others, is never held back.
"""

from __future__ import annotations

import heapq
import logging
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from riskpipe.settings import Settings

log = logging.getLogger(__name__)

PartitionKey = tuple[str, int]


class TimedRecord(Protocol):
    """The parts of a confluent ``Message`` the buffer reads."""

    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def timestamp(self) -> tuple[int, int]: ...


class AlignedBuffer:
    """Per-partition queues of consumed records, released merged by timestamp (pure: no Kafka).

    Each record is queued with the running maximum of its partition's timestamps, so keys never
    decrease within a partition: the merge keeps every partition's offset order and a partition whose
    newest key is the frontier is always released whole (progress is guaranteed).
    """

    def __init__(self, max_idle_s: float, slack_ms: int = 0) -> None:
        self.max_idle_s = max_idle_s
        self.slack_ms = slack_ms
        self._queues: dict[PartitionKey, deque[tuple[int, int, Any]]] = {}
        self._high: dict[PartitionKey, int] = {}  # running max timestamp per partition
        self._blocked_since: dict[PartitionKey, float] = {}
        self._seq = 0  # tie-breaker: equal keys keep arrival order

    def reset(self, partitions: Iterable[PartitionKey]) -> None:
        """Forget everything buffered (after a rebalance the records are re-read from committed offsets)."""
        self._queues = {tp: deque() for tp in partitions}
        self._high = {}
        self._blocked_since = {}

    def __len__(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def add(self, records: Iterable[TimedRecord]) -> None:
        for record in records:
            tp = (record.topic() or "", record.partition() or 0)
            queue = self._queues.get(tp)
            if queue is None:  # not assigned (any more): it is re-read by whoever owns it
                continue
            high = max(self._high.get(tp, 0), record.timestamp()[1])
            self._high[tp] = high
            self._seq += 1
            queue.append((high, self._seq, record))
            self._blocked_since.pop(tp, None)

    def release(self, limit: int, more_on_broker: Callable[[PartitionKey], bool], now: float) -> list[Any]:
        """Up to ``limit`` records in timestamp order, none more than ``slack_ms`` later than the newest
        timestamp of a partition that still has unread records.

        ``more_on_broker(tp)``: whether the broker has records of ``tp`` not consumed yet. A partition
        with unread records whose timestamps are unknown (none read yet) holds everything back, for
        ``max_idle_s`` at most (then it is passed over: a slow fetch must not stall the others).
        """
        frontier = float("inf")
        for tp in self._queues:
            if not more_on_broker(tp):
                continue
            high = self._high.get(tp)
            if high is not None:
                frontier = min(frontier, high + self.slack_ms)
                continue
            since = self._blocked_since.setdefault(tp, now)
            if now - since < self.max_idle_s:
                return []
        out: list[Any] = []
        for key, _, record in heapq.merge(*(q for q in self._queues.values() if q)):
            if key > frontier or len(out) >= limit:
                break
            out.append(record)
        for record in out:
            self._queues[(record.topic() or "", record.partition() or 0)].popleft()
        return out


def commit_offsets(records: Sequence[TimedRecord], into: dict[PartitionKey, int] | None = None
                   ) -> dict[PartitionKey, int]:
    """Offset to commit per partition (last record + 1), merged into ``into`` when given (the batches since the
    last checkpoint); a released batch is a prefix of each partition."""
    offsets: dict[PartitionKey, int] = {} if into is None else into
    for record in records:
        tp = (record.topic() or "", record.partition() or 0)
        offsets[tp] = max(offsets.get(tp, -1), (record.offset() or 0) + 1)
    return offsets


def events_group_id(settings: Settings) -> str:
    """The group stage 1 commits its ``events.*`` offsets under (it never joins it: manual assignment)."""
    return f"{settings.stream_app_id}-events"


class EventSource:
    """A librdkafka consumer of ``topics`` whose partitions the Faust worker decides (``want``)."""

    def __init__(self, settings: Settings, topics: Sequence[str]) -> None:
        from confluent_kafka import Consumer

        self.topics = list(topics)
        self.consumer = Consumer({
            "bootstrap.servers": settings.bootstrap_servers,
            "group.id": events_group_id(settings),
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": settings.stream_fetch_wait_ms,  # Tansu holds a fetch this long: the hop's latency
        })
        self.buffer = AlignedBuffer(settings.stream_align_idle_s, int(settings.stream_allowed_lateness_s * 500))
        self.partitions: frozenset[int] | None = None  # what is assigned now (None: nothing)
        self._wanted: frozenset[int] | None = None
        self.generation = 0  # bumped on every change of what is wanted: a batch consumed across it is stale
        self._next: dict[PartitionKey, int] = {}

    def want(self, partitions: Iterable[int] | None) -> None:
        """Called from Faust's rebalance signals; applied by the consuming task (``sync``), never concurrently
        with a ``poll`` (librdkafka's assign must not race a consume of the same handle)."""
        self._wanted = None if partitions is None else frozenset(partitions)
        self.generation += 1

    def sync(self) -> bool:
        """Apply the wanted assignment; True when there is something to consume."""
        from confluent_kafka import TopicPartition

        if self._wanted != self.partitions:
            self.consumer.unassign()
            self.buffer.reset(())
            self._next.clear()
            self.partitions = self._wanted
            if self.partitions:
                tps = [(t, p) for t in self.topics for p in sorted(self.partitions)]
                self.consumer.assign([TopicPartition(t, p) for t, p in tps])  # from the committed offsets
                self.buffer.reset(tps)
            log.info("event partitions assigned: %s", sorted(self.partitions or ()),
                     extra={"partitions": sorted(self.partitions or ())})
        return bool(self.partitions)

    def poll(self, max_records: int, timeout_s: float) -> None:
        """Fetch into the buffer (blocking: run it in an executor thread)."""
        from confluent_kafka import KafkaError

        records = []
        for message in self.consumer.consume(num_messages=max_records, timeout=timeout_s):
            error = message.error()
            if error is None:
                records.append(message)
                self._next[(message.topic(), message.partition())] = message.offset() + 1
            elif error.code() != KafkaError._PARTITION_EOF:
                log.warning("event consumer error (librdkafka retries it)", extra={"error": str(error)})
        self.buffer.add(records)

    def _more_on_broker(self, tp: PartitionKey) -> bool:
        from confluent_kafka import TopicPartition

        next_offset = self._next.get(tp)
        _, high = self.consumer.get_watermark_offsets(TopicPartition(*tp), cached=True)
        if high < 0:  # no fetch answered yet: unknown, so assume there is more
            return True
        if next_offset is None:
            position = self.consumer.position([TopicPartition(*tp)])[0].offset
            return position < 0 or position < high
        return next_offset < high

    def take(self, limit: int, now: float) -> list[Any]:
        return self.buffer.release(limit, self._more_on_broker, now)

    def commit(self, offsets: dict[PartitionKey, int]) -> None:
        """Commit checkpointed offsets (synchronously: processing goes on only once they are durable)."""
        from confluent_kafka import TopicPartition

        if offsets:
            self.consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()], asynchronous=False)

    def close(self) -> None:
        self.consumer.close()

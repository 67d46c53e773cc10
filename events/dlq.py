"""Dead letters: a refused record goes to ``dlq.<topic>`` with its reason and original bytes.

A stream worker must never stop on bad input, and an operator must be able to see, count
and replay what was refused. So the DLQ record keeps the *original* value bytes (not a
re-serialization, which could hide the defect) and its key, and says in headers why and
where it came from. ``EventGate`` is the few lines every consumer loop needs: decode,
pass the event on, or dead-letter the record and count it.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Protocol

from events.contracts import MODEL_BY_TOPIC, Event
from events.decode import Rejection, decode
from events.producer import EventProducer
from riskpipe.topics import dlq_topic

log = logging.getLogger(__name__)

MAX_DLQ_VALUE_BYTES = 512 * 1024
"""Below the broker's default 1 MB message limit, so even an absurd payload can be dead-lettered."""
MAX_DETAIL_CHARS = 1000

HEADER_REASON = "dlq.reason"
HEADER_DETAIL = "dlq.error"
HEADER_FIELD = "dlq.field"
HEADER_TOPIC = "dlq.source.topic"
HEADER_PARTITION = "dlq.source.partition"
HEADER_OFFSET = "dlq.source.offset"
HEADER_TIME = "dlq.time"
HEADER_TRUNCATED = "dlq.truncated"


class Record(Protocol):
    """The parts of a consumed Kafka message the gate needs (confluent ``Message`` fits)."""

    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...


class DeadLetterPublisher:
    """Produces rejected records to ``dlq.<source topic>`` and counts them by (topic, reason)."""

    def __init__(self, producer: EventProducer) -> None:
        self.producer = producer
        self.counts: Counter[tuple[str, str]] = Counter()

    def publish(self, source_topic: str, value: bytes | None, rejection: Rejection, *, key: bytes | None = None,
                partition: int | None = None, offset: int | None = None) -> str:
        """Dead-letter one record; returns the DLQ topic it went to."""
        original = value or b""
        headers = [
            (HEADER_REASON, str(rejection.reason).encode()),
            (HEADER_DETAIL, rejection.message[:MAX_DETAIL_CHARS].encode("utf-8", "replace")),
            (HEADER_TOPIC, source_topic.encode("utf-8", "replace")),
            (HEADER_PARTITION, b"" if partition is None else str(partition).encode()),
            (HEADER_OFFSET, b"" if offset is None else str(offset).encode()),
            (HEADER_TIME, datetime.now(UTC).isoformat().replace("+00:00", "Z").encode()),
        ]
        if rejection.field:
            headers.append((HEADER_FIELD, rejection.field.encode("utf-8", "replace")))
        if len(original) > MAX_DLQ_VALUE_BYTES:
            headers.append((HEADER_TRUNCATED, str(len(original)).encode()))
            original = original[:MAX_DLQ_VALUE_BYTES]
        target = dlq_topic(source_topic)
        self.producer.produce_raw(target, original, key=key, headers=headers)
        self.counts[(source_topic, str(rejection.reason))] += 1
        log.warning("dead-lettered record", extra={"source_topic": source_topic, "partition": partition,
                                                   "offset": offset, "reason": str(rejection.reason),
                                                   "detail": rejection.message[:200]})
        return target

    def total(self) -> int:
        return sum(self.counts.values())


class EventGate:
    """Decode consumed records; valid ones come back as events, the rest go to the DLQ.

    ``topics`` maps physical topic names to contracts (default: the canonical topics),
    which lets prefixed test topics reuse the same code.
    """

    def __init__(self, dlq: DeadLetterPublisher, topics: Mapping[str, type[Event]] | None = None) -> None:
        self.dlq = dlq
        self.topics = dict(topics or MODEL_BY_TOPIC)
        self.accepted: Counter[str] = Counter()

    def admit(self, record: Record, *, now: datetime | None = None) -> Event | None:
        """The event, or ``None`` after dead-lettering the record (never raises for bad data)."""
        topic = record.topic() or ""
        model = self.topics.get(topic)
        value = record.value()
        result: Event | Rejection = (decode(model, value, key=record.key(), require_key=True, now=now)
                                     if model is not None else decode(topic, value))
        if isinstance(result, Rejection):
            self.dlq.publish(topic, value, result, key=record.key(), partition=record.partition(),
                             offset=record.offset())
            return None
        self.accepted[topic] += 1
        return result


def prefixed_topics(prefix: str) -> dict[str, type[Event]]:
    """Contract per physical topic when topics carry a prefix (see ``EventProducer.topic_prefix``)."""
    return {f"{prefix}{topic}": model for topic, model in MODEL_BY_TOPIC.items()}

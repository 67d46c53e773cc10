"""The one Kafka producer the simulator, replay and DLQ use (confluent-kafka).

Why these settings:
- ``partitioner=murmur2_random``: the Java/Faust partitioner, so an account's events land on
  the partition the Faust workers expect (librdkafka's default hashes differently).
- Keyed by account id: one account's events stay ordered on one partition.
- ``linger.ms`` + ``batch.num.messages`` batch small JSON records; the bounded local queue
  gives backpressure: on ``BufferError`` we serve delivery reports (``poll``) and retry
  instead of growing memory or dropping events.
- ``linger.ms`` 50, not 10: the broker's cost is per produce request, not per record. A steady
  5k events/s producer at 10 ms sent ~100 requests/s and the broker burnt 0.51 cores on them;
  at 50 ms it took 0.25, and on a 2-core machine that CPU went to the stream workers: freshness
  p99 at 5k events/s fell from 3.8-5 s to 1.3 s (``benchmarks/bench_stream.py``). 25 ms: 0.33
  cores, p99 1.5 s; 100 ms: 0.22 cores, p99 1.4 s. The price is at most 50 ms per record.
- librdkafka retries transient broker errors itself; a record that still fails is
  reported through the delivery callback, counted, logged, and raised by ``flush`` -
  never silently dropped. No idempotence: Tansu (the embedded broker) lacks it.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from events.contracts import Event
from events.wire import encode

log = logging.getLogger(__name__)

DEFAULT_CONFIG: dict[str, Any] = {
    "partitioner": "murmur2_random",
    "acks": "all",
    "linger.ms": 50,
    "batch.num.messages": 10_000,
    "queue.buffering.max.messages": 200_000,
    "message.send.max.retries": 10,
    "retry.backoff.ms": 100,
    "delivery.timeout.ms": 60_000,
    "enable.idempotence": False,
}


class ProduceError(RuntimeError):
    """Records could not be delivered; the message says how many and the first errors."""


@dataclass
class DeliveryStats:
    """What the delivery callbacks reported (per topic), so callers can print or export it."""

    delivered: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    first_errors: list[str] = field(default_factory=list)
    backpressure_waits: int = 0


class EventProducer:
    """Produces contract events (validated pydantic objects) and raw records.

    ``topic_prefix`` renames every topic (``<prefix><topic>``) so tests and tenants can
    share a broker without sharing topics.
    """

    def __init__(self, bootstrap_servers: str, *, topic_prefix: str = "",
                 config: Mapping[str, Any] | None = None, client_id: str = "riskpipe-events") -> None:
        conf = {**DEFAULT_CONFIG, "bootstrap.servers": bootstrap_servers, "client.id": client_id,
                "error_cb": self._on_client_error, **(config or {})}
        self._producer = Producer(conf)
        self.topic_prefix = topic_prefix
        self.stats = DeliveryStats()
        self._fatal: str | None = None

    def topic(self, logical: str) -> str:
        """Physical topic name of a logical one (applies the prefix)."""
        return f"{self.topic_prefix}{logical}"

    def _on_client_error(self, err: KafkaError) -> None:
        log.error("kafka client error", extra={"kafka_error": str(err), "fatal": err.fatal()})
        if err.fatal():
            self._fatal = str(err)

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        topic = msg.topic() or "?"
        if err is None:
            self.stats.delivered[topic] += 1
            return
        self.stats.failed[topic] += 1
        if len(self.stats.first_errors) < 10:
            self.stats.first_errors.append(f"{topic}: {err}")
        log.error("delivery failed", extra={"topic": topic, "kafka_error": str(err)})

    def produce_raw(self, topic: str, value: bytes | None, key: bytes | None = None,
                    headers: list[tuple[str, bytes]] | None = None, partition: int = -1,
                    timestamp_ms: int = 0) -> None:
        """Queue one record on a physical topic, waiting (not dropping) when the local queue is full.

        ``partition`` -1 lets the murmur2 partitioner choose from the key (the default everywhere but where a
        record must land on a given partition whatever its key, like the compute worker's changelog markers);
        ``timestamp_ms`` 0 stamps the record with the time it is produced."""
        if self._fatal:
            raise ProduceError(f"producer is in a fatal state: {self._fatal}")
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, headers=headers, partition=partition,
                                       timestamp=timestamp_ms, on_delivery=self._on_delivery)
            except BufferError:
                self.stats.backpressure_waits += 1
                self._producer.poll(0.05)
                continue
            break
        self._producer.poll(0)

    def produce(self, event: Event) -> None:
        """Queue a validated event on its (prefixed) topic, keyed by account id, stamped with its event time
        (labels: with the time they are produced; ``Event.record_timestamp_ms``).

        The record timestamp is the event time (Kafka Streams' convention): the compute worker releases events
        in timestamp order across partitions (``streaming.event_source``), which for a replay of history -
        days of event time produced within seconds - only works with event times, not produce times."""
        self.produce_raw(self.topic(event.topic), encode(event), event.account_id.encode("utf-8"),
                         timestamp_ms=event.record_timestamp_ms)

    def produce_many(self, events: Iterable[Event]) -> int:
        n = 0
        for event in events:
            self.produce(event)
            n += 1
        return n

    def poll(self, timeout: float = 0) -> int:
        """Serve delivery callbacks (call regularly in long loops)."""
        return self._producer.poll(timeout)

    def flush(self, timeout: float = 30.0) -> DeliveryStats:
        """Wait for every queued record; raise ``ProduceError`` if any failed or timed out."""
        deadline = time.monotonic() + timeout
        remaining = self._producer.flush(timeout)
        while remaining and time.monotonic() < deadline:
            remaining = self._producer.flush(max(0.1, deadline - time.monotonic()))
        failed = sum(self.stats.failed.values())
        if remaining or failed or self._fatal:
            parts = []
            if remaining:
                parts.append(f"{remaining} records still queued after {timeout:.0f}s (broker unreachable?)")
            if failed:
                parts.append(f"{failed} records failed: {'; '.join(self.stats.first_errors[:3])}")
            if self._fatal:
                parts.append(f"fatal client error: {self._fatal}")
            raise ProduceError("; ".join(parts))
        return self.stats

    def close(self, timeout: float = 30.0) -> DeliveryStats:
        return self.flush(timeout)

    def __enter__(self) -> EventProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.flush()
        else:  # do not mask the original error; still try to deliver what is queued
            try:
                self.flush()
            except ProduceError as err:
                log.error("flush after error failed", extra={"kafka_error": str(err)})

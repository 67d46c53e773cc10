"""Producer behaviour that a real broker cannot be made to show on demand: backpressure and failures.

The confluent ``Producer`` is replaced by a scripted fake (unit tests may mock); the real
broker path is covered by tests/integration/events.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from confluent_kafka import KafkaError

import events.producer as producer_module
from events.contracts import Transaction
from events.producer import EventProducer, ProduceError


class FakeMessage:
    def __init__(self, topic: str) -> None:
        self._topic = topic

    def topic(self) -> str:
        return self._topic


class FakeProducer:
    """Raises BufferError ``full`` times, then accepts; delivery fails for topics in ``failing``."""

    def __init__(self, conf: dict) -> None:
        self.conf = conf
        self.full = 2
        self.failing: set[str] = set()
        self.queued: list[tuple] = []
        self.sent: list[tuple] = []
        self.timestamps: list[int] = []
        self.polls = 0

    def produce(self, topic, value=None, key=None, headers=None, partition=-1, timestamp=0, on_delivery=None) -> None:
        if self.full:
            self.full -= 1
            raise BufferError("queue full")
        self.queued.append((topic, value, key, headers, on_delivery))
        self.sent.append((topic, value, key))
        self.timestamps.append(timestamp)

    def poll(self, timeout: float = 0) -> int:
        self.polls += 1
        served = 0
        while self.queued:
            topic, _, _, _, callback = self.queued.pop(0)
            err = KafkaError(KafkaError._MSG_TIMED_OUT) if topic in self.failing else None
            callback(err, FakeMessage(topic))
            served += 1
        return served

    def flush(self, timeout: float = 0) -> int:
        self.poll()
        return 0


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> list[FakeProducer]:
    made: list[FakeProducer] = []

    def factory(conf: dict) -> FakeProducer:
        made.append(FakeProducer(conf))
        return made[-1]

    monkeypatch.setattr(producer_module, "Producer", factory)
    return made


def _txn(i: int) -> Transaction:
    return Transaction(event_id=f"t{i}", event_time=datetime(2026, 1, 1, tzinfo=UTC), account_id=f"a{i}",
                       txn_type="deposit", amount=10, currency="USD", device_id="d", ip="i", country="US",
                       channel="web")


def test_configuration_is_faust_compatible_and_keyed_by_account(fake) -> None:
    producer = EventProducer("host:1", topic_prefix="p.")
    conf = fake[0].conf
    assert conf["partitioner"] == "murmur2_random"
    assert conf["acks"] == "all" and conf["message.send.max.retries"] > 0
    fake[0].full = 0
    producer.produce(_txn(1))
    topic, value, key = fake[0].sent[0]
    assert (topic, key) == ("p.events.transactions", b"a1")
    assert b'"account_id":"a1"' in value
    assert fake[0].timestamps == [int(datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1000)]  # the event time


def test_full_queue_waits_and_retries_instead_of_dropping(fake) -> None:
    producer = EventProducer("host:1")
    producer.produce(_txn(1))
    stats = producer.flush()
    assert stats.backpressure_waits == 2
    assert stats.delivered["events.transactions"] == 1


def test_delivery_failures_are_counted_and_raised_by_flush(fake) -> None:
    producer = EventProducer("host:1")
    fake[0].full = 0
    fake[0].failing = {"events.transactions"}
    producer.produce(_txn(1))
    producer.produce(_txn(2))
    with pytest.raises(ProduceError, match="2 records failed"):
        producer.flush()
    assert producer.stats.failed["events.transactions"] == 2

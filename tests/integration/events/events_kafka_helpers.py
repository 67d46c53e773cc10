"""Small broker helpers for the events integration tests (topic creation, drain a topic set)."""

from __future__ import annotations

import time
from collections.abc import Iterable

from confluent_kafka import Consumer, Message
from confluent_kafka.admin import AdminClient, NewTopic


def create_topics(broker: str, names: Iterable[str], partitions: int = 2) -> None:
    admin = AdminClient({"bootstrap.servers": broker})
    futures = admin.create_topics([NewTopic(n, num_partitions=partitions, replication_factor=1) for n in names])
    for future in futures.values():
        future.result(15)


def consume(broker: str, topics: list[str], group: str, expected: int, idle_s: float = 3.0,
            limit_s: float = 60.0) -> list[Message]:
    """Read until ``expected`` records arrived, then ``idle_s`` more with nothing new (catches extras)."""
    consumer = Consumer({"bootstrap.servers": broker, "group.id": group, "auto.offset.reset": "earliest",
                         "session.timeout.ms": 6000, "heartbeat.interval.ms": 1000, "enable.auto.commit": False})
    consumer.subscribe(topics)
    out: list[Message] = []
    deadline = time.monotonic() + limit_s
    quiet_since = time.monotonic()
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None:
                if len(out) >= expected and time.monotonic() - quiet_since > idle_s:
                    break
                continue
            if msg.error() is not None:
                continue
            out.append(msg)
            quiet_since = time.monotonic()
    finally:
        consumer.close()
    return out

"""Drive a consumer group to a known lag on the real broker: produce N per partition, consume and commit K."""

from __future__ import annotations

import time
from collections.abc import Mapping

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def drive_group(bootstrap: str, topic: str, group: str, produced: Mapping[int, int],
                consumed: Mapping[int, int]) -> None:
    """Afterwards the group's lag on ``topic`` is ``produced[p] - consumed[p]`` per partition.

    One record per producer batch: Tansu's ListOffsets answers the last batch's base offset + 1, which is
    exact only when every batch holds one record (see monitoring/lag.py).
    """
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, num_partitions=len(produced), replication_factor=1)]).values():
        future.result(10)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "batch.num.messages": 1})
    for partition, n in produced.items():
        for i in range(n):
            producer.produce(topic, f"{partition}-{i}".encode(), partition=partition)
    assert producer.flush(20) == 0

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                         "auto.offset.reset": "earliest"})
    consumer.assign([TopicPartition(topic, p, 0) for p, k in consumed.items() if k])
    seen = dict.fromkeys(consumed, 0)
    deadline = time.monotonic() + 30
    while any(seen[p] < k for p, k in consumed.items()) and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None or msg.error():
            continue
        p = msg.partition()
        if seen[p] < consumed[p]:
            seen[p] += 1
            if seen[p] == consumed[p]:
                consumer.commit(offsets=[TopicPartition(topic, p, msg.offset() + 1)], asynchronous=False)
    consumer.close()
    assert seen == dict(consumed), f"consumed {seen}, wanted {dict(consumed)}"

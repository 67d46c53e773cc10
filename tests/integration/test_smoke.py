"""Smoke test through the real broker, Redis and DuckDB: the three services everything else uses."""

from __future__ import annotations

import duckdb
import pytest
import redis
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

pytestmark = pytest.mark.integration


def test_broker_redis_duckdb_round_trip(broker: str, redis_url: str, unique: str, tmp_path) -> None:
    topic = f"smoke.{unique}"
    admin = AdminClient({"bootstrap.servers": broker})
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])[topic].result(10)

    producer = Producer({"bootstrap.servers": broker, "partitioner": "murmur2_random"})
    for i in range(10):
        producer.produce(topic, key=f"acct-{i % 3}", value=str(i).encode())
    assert producer.flush(10) == 0

    consumer = Consumer({"bootstrap.servers": broker, "group.id": unique, "auto.offset.reset": "earliest",
                         "session.timeout.ms": 6000, "heartbeat.interval.ms": 1000})
    consumer.subscribe([topic])
    values: list[int] = []
    for _ in range(100):
        msg = consumer.poll(0.5)
        if msg is not None and msg.error() is None:
            values.append(int(msg.value()))
        if len(values) == 10:
            break
    consumer.close()
    assert sorted(values) == list(range(10))

    r = redis.Redis.from_url(redis_url)
    r.hset(f"{unique}:acct", mapping={"sum": sum(values)})
    total = int(r.hget(f"{unique}:acct", "sum"))

    con = duckdb.connect(str(tmp_path / "offline.duckdb"))
    con.execute("create table t(v integer)")
    con.executemany("insert into t values (?)", [[v] for v in values])
    assert con.execute("select sum(v) from t").fetchone()[0] == total == 45

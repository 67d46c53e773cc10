"""Live simulation through the real broker: everything produced comes back valid, labels after events."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest
from events_kafka_helpers import consume, create_topics

from events.contracts import MODEL_BY_TOPIC, FraudLabel, Transaction
from events.dlq import DeadLetterPublisher, EventGate, prefixed_topics
from events.producer import EventProducer
from events.simulator.config import LabelDelay, SimulationConfig
from events.simulator.engine import Simulator
from events.simulator.live import run_live
from riskpipe.topics import dlq_topic

pytestmark = pytest.mark.integration


def test_live_events_and_labels_round_trip_valid(broker: str, unique: str) -> None:
    prefix = f"{unique}."
    topics = [f"{prefix}{t}" for t in MODEL_BY_TOPIC]
    create_topics(broker, topics + [dlq_topic(t) for t in topics])
    config = SimulationConfig(seed=4, accounts=400, days=1, start=datetime.now(UTC), fraud_rate=0.08,
                              label_delay=LabelDelay(median_hours=0.0004, sigma=0.3, min_hours=0, never_rate=0))
    producer = EventProducer(broker, topic_prefix=prefix)
    report = run_live(Simulator(config, live_rate=300), producer, duration_s=4, tick_s=0.25)
    produced = sum(report.produced.values())
    assert report.produced[Transaction.topic] > 100 and report.produced[FraudLabel.topic] > 0
    assert report.delivery is not None and sum(report.delivery.failed.values()) == 0

    gate = EventGate(DeadLetterPublisher(EventProducer(broker)), prefixed_topics(prefix))
    messages = consume(broker, topics, f"{unique}-g", produced)
    events = [gate.admit(m) for m in messages]
    assert gate.dlq.total() == 0, gate.dlq.counts
    assert len(messages) == produced
    assert Counter({t.removeprefix(prefix): n for t, n in gate.accepted.items()}) == report.produced

    txn_ids = {e.event_id for e in events if isinstance(e, Transaction)}
    for message, event in zip(messages, events, strict=True):
        if isinstance(event, FraudLabel):
            assert event.event_id in txn_ids
            # produced only once its label_time had passed (broker timestamp = produce time, in ms)
            assert event.label_time.timestamp() * 1000 <= message.timestamp()[1] + 1
    gate.dlq.producer.flush()

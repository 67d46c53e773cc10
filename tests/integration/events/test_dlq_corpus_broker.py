"""The bad-event corpus, produced to the real broker, lands 100% in dlq.<topic> with reason and original bytes;
valid records interleaved with it still get through (a bad record never stops the consumer)."""

from __future__ import annotations

import importlib.util
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from events_kafka_helpers import consume, create_topics

from events.contracts import MODEL_BY_TOPIC
from events.dlq import HEADER_OFFSET, HEADER_REASON, HEADER_TOPIC, DeadLetterPublisher, EventGate, prefixed_topics
from events.producer import EventProducer
from riskpipe.topics import dlq_topic

pytestmark = pytest.mark.integration

def _load_corpus():
    """The corpus loader lives with the unit tests; import it by path (tests are not a package)."""
    if "events_bad_corpus" in sys.modules:
        return sys.modules["events_bad_corpus"]
    path = Path(__file__).parents[2] / "unit" / "events" / "events_bad_corpus.py"
    spec = importlib.util.spec_from_file_location("events_bad_corpus", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["events_bad_corpus"] = module
    spec.loader.exec_module(module)
    return module


corpus = _load_corpus()


def test_every_bad_event_is_dead_lettered_with_reason_and_original_bytes(broker: str, unique: str) -> None:
    prefix = f"{unique}."
    sources = [f"{prefix}{t}" for t in MODEL_BY_TOPIC]
    create_topics(broker, sources, partitions=1)  # one partition: offsets follow produce order
    create_topics(broker, [dlq_topic(t) for t in sources])
    cases, valid = corpus.load_cases(), corpus.load_valid()

    producer = EventProducer(broker)
    by_offset: dict[tuple[str, int], object] = {}
    next_offset: dict[str, int] = defaultdict(int)
    for i, case in enumerate(cases):
        for record in ([case, valid[i % len(valid)]] if i % 5 == 0 else [case]):
            topic = f"{prefix}{record.topic}"
            producer.produce_raw(topic, record.value, key=record.key)
            by_offset[(topic, next_offset[topic])] = record
            next_offset[topic] += 1
    producer.flush()

    gate = EventGate(DeadLetterPublisher(EventProducer(broker)), prefixed_topics(prefix))
    messages = consume(broker, sources, f"{unique}-src", len(by_offset))
    assert len(messages) == len(by_offset)
    admitted = [e for e in (gate.admit(m) for m in messages) if e is not None]
    gate.dlq.producer.flush()
    assert len(admitted) == len(by_offset) - len(cases)
    assert gate.dlq.total() == len(cases)

    dead = consume(broker, [dlq_topic(t) for t in sources], f"{unique}-dlq", len(cases))
    assert len(dead) == len(cases)
    seen = set()
    for message in dead:
        headers = {k: v.decode() for k, v in message.headers()}
        source = (headers[HEADER_TOPIC], int(headers[HEADER_OFFSET]))
        case = by_offset[source]
        assert message.topic() == dlq_topic(source[0])
        assert headers[HEADER_REASON] == case.expected_reason, case.name
        assert (message.value() or b"") == case.value and message.key() == case.key
        seen.add(case.name)
    assert seen == {c.name for c in cases}

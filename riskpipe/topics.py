"""Kafka topic names of the architecture guide, in one place.

Feature topics (``features.<group>``) depend on the registry, so callers pass the
group names they know; everything else is fixed by the contracts.
"""

from __future__ import annotations

from collections.abc import Iterable

EVENT_TOPICS: tuple[str, ...] = ("events.transactions", "events.logins", "events.account_changes")
LABELS_TOPIC = "labels.fraud"
PREDICTIONS_TOPIC = "predictions.log"
ALERTS_TOPIC = "alerts"


def dlq_topic(topic: str) -> str:
    """Dead-letter topic for a source topic: malformed records land there with a reason."""
    return f"dlq.{topic}"


def feature_topic(group: str) -> str:
    """Buffer topic between stream compute and ingestion for one feature group."""
    return f"features.{group}"


def all_topics(feature_groups: Iterable[str] = ()) -> list[str]:
    """Every topic the pipeline needs, for `riskpipe up` and the test fixtures."""
    base = [*EVENT_TOPICS, LABELS_TOPIC, PREDICTIONS_TOPIC, ALERTS_TOPIC]
    dlqs = [dlq_topic(t) for t in (*EVENT_TOPICS, LABELS_TOPIC)]
    return base + dlqs + [feature_topic(g) for g in feature_groups]

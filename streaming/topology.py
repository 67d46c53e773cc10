"""Which groups the stream computes and which topics the workers use (names from settings, never literals).

``features.<group>`` topics exist only once the registry defines groups, so the workers create
the topics they read or write at start-up (idempotent) instead of relying on `riskpipe up`.
"""

from __future__ import annotations

import functools
import logging
import struct
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from features.definitions.catalog import FEATURE_GROUPS
from features.definitions.groups import WindowedFeatureGroup
from riskpipe.errors import UsageError
from riskpipe.settings import Settings
from riskpipe.topics import EVENT_TOPICS, dlq_topic, feature_topic
from streaming.window_state import GroupPlan, PlanError

log = logging.getLogger(__name__)


def stream_groups(settings: Settings) -> list[WindowedFeatureGroup]:
    """The windowed groups to compute: all of the catalog, or those named in ``stream_groups``."""
    windowed = [g for g in FEATURE_GROUPS if isinstance(g, WindowedFeatureGroup)]
    if not settings.stream_groups:
        return windowed
    by_name = {g.name: g for g in windowed}
    wanted = [n.strip() for n in settings.stream_groups.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in by_name]
    if unknown:
        raise UsageError(f"stream_groups: unknown or non-stream group(s) {unknown}; known: {sorted(by_name)} "
                         f"(check RISKPIPE_STREAM_GROUPS)")
    return [by_name[n] for n in wanted]


def plans(settings: Settings) -> list[GroupPlan]:
    """One plan per (entity, source) of the stream groups: groups that share both share one state."""
    lateness = timedelta(seconds=settings.stream_allowed_lateness_s)
    fused: dict[tuple[str, str], list[WindowedFeatureGroup]] = {}
    for group in stream_groups(settings):
        fused.setdefault((group.entity.name, group.source.name), []).append(group)
    try:
        return [GroupPlan(groups, lateness) for groups in fused.values()]
    except PlanError as exc:
        raise UsageError(str(exc)) from exc


def physical(settings: Settings, logical: str) -> str:
    """The topic name on the broker (``topic_prefix`` + the architecture's name)."""
    return f"{settings.topic_prefix}{logical}"


def event_topics(settings: Settings) -> list[str]:
    return [physical(settings, t) for t in EVENT_TOPICS]


def group_names(group_plans: Iterable[GroupPlan]) -> list[str]:
    """The feature groups the plans compute (each has its ``features.<group>`` topic)."""
    return [name for plan in group_plans for name in plan.group_names]


def update_topic(settings: Settings, group: str) -> str:
    return physical(settings, feature_topic(group))


def rekey_topic(settings: Settings) -> str:
    """The repartition topic between the two compute stages; named after the app id, so apps never share it."""
    return f"{settings.topic_prefix}{settings.stream_app_id}-rekey"


_M = 0x5BD1E995


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (``Utils.murmur2``) as an unsigned 32-bit int, what aiokafka's returns. aiokafka's reads the
    key byte by byte in Python; this one takes its 4-byte words with ``struct`` (1.7x faster: the worker hashes
    every new entity key it meets)."""
    length = len(data)
    h = 0x9747B28C ^ length
    for k in struct.unpack_from(f"<{length >> 2}I", data):
        k = (k * _M) & 0xFFFFFFFF
        k = ((k ^ (k >> 24)) * _M) & 0xFFFFFFFF
        h = ((h * _M) & 0xFFFFFFFF) ^ k
    tail = data[length & ~3:]
    if tail:
        for shift, byte in zip((0, 8, 16), tail, strict=False):
            h ^= byte << shift
        h = (h * _M) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * _M) & 0xFFFFFFFF
    return h ^ (h >> 15)


@functools.lru_cache(maxsize=1 << 18)
def key_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default (murmur2) partitioner gives ``key``: the one Faust, aiokafka and our
    confluent-kafka producers (``murmur2_random``) agree on, so packs can be grouped by it. Cached: the compute
    worker asks for the same entity keys batch after batch."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def update_dlq_topic(settings: Settings, group: str) -> str:
    return dlq_topic(update_topic(settings, group))


def ensure_topics(settings: Settings, names: Iterable[str]) -> None:
    """Create missing topics with the configured partition count (already-existing ones are fine)."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers})
    existing = set(admin.list_topics(timeout=10).topics)
    new = [NewTopic(t, num_partitions=settings.topic_partitions, replication_factor=1)
           for t in dict.fromkeys(names) if t not in existing]
    if not new:
        return
    for topic, future in admin.create_topics(new).items():
        try:
            future.result(15)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
        log.info("created topic", extra={"topic": topic})


def manual_commit_consumer(settings: Settings, group_id: str) -> Any:
    """A confluent-kafka consumer that commits only after its sink wrote (at-least-once + idempotent sinks).

    The session timeout follows the Tansu note (JoinGroup is held ~session/2); the long poll interval
    lets a worker retry a store outage without being thrown out of the group.
    """
    from confluent_kafka import Consumer

    session = settings.kafka_session_timeout_ms
    return Consumer({
        "bootstrap.servers": settings.bootstrap_servers,
        "group.id": group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": session,
        "heartbeat.interval.ms": max(100, session // 4),
        "max.poll.interval.ms": 600_000,
        "fetch.wait.max.ms": settings.stream_fetch_wait_ms,  # Tansu holds a fetch this long: the hop's latency
    })

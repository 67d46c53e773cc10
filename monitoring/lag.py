"""Consumer lag of the pipeline's consumer groups: high-watermark minus committed offset, per partition.

Lag is what tells an operator that a worker falls behind before freshness does: a worker can
report "running" while its backlog grows. It is computed from the broker alone (committed
offsets through the admin API, high-watermarks through ListOffsets), so it works for a worker
that is down, too.

Caveat (embedded Tansu broker): ListOffsets(LATEST) answers the last batch's base offset + 1,
so a high-watermark can be short by up to one producer batch and lag reads low, never high;
that is why lag is clamped at zero. On Apache Kafka (docker-compose, production) it is exact.

Lag counts *messages*: on ``events.*`` one message is one event, but on ``features.<group>`` and the
re-key topic one message is a pack of up to 500 rows (``streaming/updates.py``, format 2), so the
ingest group's lag is in packs, not feature updates.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from riskpipe.settings import Settings
from streaming.event_source import events_group_id

TopicPartitionKey = tuple[str, int]
STREAM_WORKERS = ("stream-compute", "stream-ingest", "stream-archive")  # their status-file and service names


@dataclass(frozen=True)
class PartitionLag:
    """One committed partition of one group."""

    group: str
    topic: str
    partition: int
    committed: int
    high_watermark: int

    @property
    def lag(self) -> int:
        # max(0, ...): Tansu's short high-watermarks (module docstring) must not show as negative lag
        return max(0, self.high_watermark - self.committed)


def pipeline_groups(settings: Settings) -> dict[str, str]:
    """Consumer group id -> who consumes with it: the stream workers, the monitoring run's predictions.log
    drain (monitoring/served.py), plus ``lag_extra_groups``."""
    ids = (settings.stream_app_id, settings.ingest_group_id, settings.archive_group_id)
    groups = dict(zip(ids, STREAM_WORKERS, strict=True))
    groups[events_group_id(settings)] = STREAM_WORKERS[0]  # stage 1 commits events.* offsets under its own group
    groups[settings.monitoring_group_id] = "monitoring"
    for extra in (settings.lag_extra_groups or "").split(","):
        if extra.strip():
            groups.setdefault(extra.strip(), extra.strip())
    return groups


def partition_lags(group: str, committed: Mapping[TopicPartitionKey, int],
                   high_watermarks: Mapping[TopicPartitionKey, int]) -> list[PartitionLag]:
    """Join committed offsets with high-watermarks; partitions without a valid commit or watermark are skipped
    (a negative offset is librdkafka's "none"), because their lag is unknown, not zero."""
    rows = []
    for (topic, partition), offset in sorted(committed.items()):
        hw = high_watermarks.get((topic, partition))
        if offset < 0 or hw is None or hw < 0:
            continue
        rows.append(PartitionLag(group, topic, partition, offset, hw))
    return rows


def lag_by_topic(lags: Iterable[PartitionLag]) -> dict[tuple[str, str], int]:
    """(group, topic) -> summed lag over partitions: the granularity of the dashboards and `riskpipe monitor`."""
    totals: dict[tuple[str, str], int] = defaultdict(int)
    for row in lags:
        totals[(row.group, row.topic)] += row.lag
    return dict(totals)


class LagReader:
    """Reads lag over one long-lived AdminClient (the exporter calls it on every scrape)."""

    def __init__(self, bootstrap_servers: str, timeout_s: float = 5.0) -> None:
        from confluent_kafka.admin import AdminClient

        # log_level 0: librdkafka would print a line per reconnect attempt; failures surface as exceptions instead
        self.admin = AdminClient({"bootstrap.servers": bootstrap_servers, "log_level": 0})
        self.timeout_s = timeout_s

    def committed(self, group: str) -> dict[TopicPartitionKey, int]:
        """Every partition the group has committed (an unknown group has none)."""
        from confluent_kafka import ConsumerGroupTopicPartitions

        # one group per request: confluent-kafka's list_consumer_group_offsets accepts a single group
        futures = self.admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)],
                                                         request_timeout=self.timeout_s)
        result = futures[group].result(self.timeout_s)
        return {(tp.topic, tp.partition): tp.offset for tp in result.topic_partitions or []}

    def high_watermarks(self, partitions: Iterable[TopicPartitionKey]) -> dict[TopicPartitionKey, int]:
        from confluent_kafka import KafkaException, TopicPartition
        from confluent_kafka.admin import OffsetSpec

        wanted = {TopicPartition(t, p): OffsetSpec.latest() for t, p in set(partitions)}
        if not wanted:
            return {}
        futures = self.admin.list_offsets(wanted, request_timeout=self.timeout_s)
        out = {}
        for tp, future in futures.items():
            try:
                out[(tp.topic, tp.partition)] = future.result(self.timeout_s).offset
            except KafkaException:  # e.g. a deleted topic: its lag is unknown, the other partitions still count
                continue
        return out

    def read(self, groups: Iterable[str]) -> list[PartitionLag]:
        """Per-partition lag of every group; raises when the broker cannot be reached (callers show that)."""
        try:
            committed = {group: self.committed(group) for group in groups}
        except TimeoutError as exc:  # concurrent.futures' timeout carries no message
            raise TimeoutError(f"broker did not answer within {self.timeout_s:g}s") from exc
        high = self.high_watermarks(key for offsets in committed.values() for key in offsets)
        return [row for group, offsets in committed.items() for row in partition_lags(group, offsets, high)]


def read_lag(settings: Settings, groups: Iterable[str] | None = None) -> list[PartitionLag]:
    """One-shot read for the CLI: the pipeline's groups unless ``groups`` is given."""
    return LagReader(settings.bootstrap_servers).read(list(groups) if groups is not None else pipeline_groups(settings))


def as_rows(lags: Iterable[PartitionLag], owners: Mapping[str, str]) -> list[dict[str, Any]]:
    """(group, topic) totals as JSON-friendly rows, with the worker that owns each group."""
    return [{"group": group, "consumer": owners.get(group, group), "topic": topic, "lag": lag}
            for (group, topic), lag in sorted(lag_by_topic(lags).items())]

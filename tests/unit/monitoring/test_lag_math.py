"""Lag aggregation: high-watermark minus committed, clamped, unknowns skipped, summed per (group, topic)."""

from __future__ import annotations

from pathlib import Path

from monitoring.lag import PartitionLag, as_rows, lag_by_topic, partition_lags, pipeline_groups
from riskpipe.settings import Settings


def test_lag_is_high_watermark_minus_committed_per_partition() -> None:
    rows = partition_lags("g", {("t", 0): 3, ("t", 1): 10}, {("t", 0): 8, ("t", 1): 10})
    assert [(r.partition, r.lag) for r in rows] == [(0, 5), (1, 0)]


def test_short_tansu_watermark_never_gives_negative_lag() -> None:
    assert PartitionLag("g", "t", 0, committed=12, high_watermark=9).lag == 0


def test_partitions_without_commit_or_watermark_are_unknown_not_zero() -> None:
    rows = partition_lags("g", {("t", 0): -1001, ("t", 1): 4, ("u", 0): 2}, {("t", 0): 5, ("t", 1): 6})
    assert [(r.topic, r.partition) for r in rows] == [("t", 1)]


def test_totals_per_group_and_topic() -> None:
    lags = [*partition_lags("a", {("t", 0): 1, ("t", 1): 2, ("u", 0): 0}, {("t", 0): 4, ("t", 1): 4, ("u", 0): 7}),
            *partition_lags("b", {("t", 0): 0}, {("t", 0): 4})]
    assert lag_by_topic(lags) == {("a", "t"): 5, ("a", "u"): 7, ("b", "t"): 4}
    assert as_rows(lags, {"a": "stream-ingest"})[0] == {"group": "a", "consumer": "stream-ingest", "topic": "t",
                                                        "lag": 5}


def test_pipeline_groups_follow_settings_and_extras(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path, stream_app_id="app", ingest_group_id="ing", archive_group_id="arc",
                 monitoring_group_id="mon", lag_extra_groups=" other , ,app")
    assert pipeline_groups(s) == {"app": "stream-compute", "app-events": "stream-compute", "ing": "stream-ingest",
                                  "arc": "stream-archive",
                                  "mon": "monitoring", "other": "other"}

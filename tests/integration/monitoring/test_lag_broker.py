"""Consumer lag on the real broker equals produced minus committed, per partition and per topic."""

from __future__ import annotations

from lag_harness import drive_group

from monitoring.lag import LagReader, lag_by_topic


def test_lag_equals_produced_minus_consumed(broker: str, unique: str) -> None:
    topic, group = f"{unique}.events", f"{unique}-group"
    drive_group(broker, topic, group, produced={0: 12, 1: 7, 2: 5}, consumed={0: 4, 1: 7, 2: 0})

    lags = LagReader(broker).read([group, f"{unique}-never-consumed"])
    # partition 2 has no commit: its lag is unknown, not reported as 0 or as the whole backlog
    assert sorted((r.partition, r.committed, r.high_watermark, r.lag) for r in lags) == [(0, 4, 12, 8), (1, 7, 7, 0)]
    assert lag_by_topic(lags) == {(group, topic): 8}

"""A simulated day through the real pipeline: the stream's offline rows equal the oracle and the batch engine.

Broker, Redis and DuckDB are real; the compute (Faust) and ingestion workers run as
subprocesses exactly as `riskpipe up` runs them.
"""

from __future__ import annotations

import re

import pytest
from stream_harness import (
    Truth,
    Workers,
    batch_engine_mismatches,
    online_mismatches,
    produce,
    simulate_day,
    wait_status,
    wait_until,
)

from riskpipe.settings import Settings
from streaming.status import read_status
from streaming.topology import stream_groups

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_stream_offline_values_equal_batch_engine_and_oracle(stream_settings: Settings, workers: Workers) -> None:
    day = simulate_day(stream_settings, accounts=30, seed=11)
    truth = Truth.of(stream_settings, day)
    assert produce(stream_settings, day.tables) == day.events

    workers.start("compute")
    workers.start("ingest")
    wait_until(lambda: truth.offline_mismatches(stream_settings), 120, workers, "offline feature history")
    assert online_mismatches(stream_settings, stream_groups(stream_settings)) == []

    compute = read_status(stream_settings, "stream-compute")
    assert compute is not None
    assert compute["counters"]["events"] == day.events
    assert compute["counters"].get("late", 0) == 0 and compute["counters"].get("rejected", 0) == 0
    workers.stop_all()
    assert batch_engine_mismatches(stream_settings, truth) == []


def test_two_compute_workers_split_the_partitions_and_still_equal_the_oracle(stream_settings: Settings,
                                                                              workers: Workers) -> None:
    """Scale-out: a second worker joins mid-stream; Faust rebalances the tables and stage 1 follows them."""
    day = simulate_day(stream_settings, accounts=30, seed=12)
    truth = Truth.of(stream_settings, day)
    produce(stream_settings, day.tables)
    workers.start("compute")
    wait_status(stream_settings, "stream-compute", lambda s: s["counters"].get("events", 0) > 0, 90, workers)
    workers.start("compute", instance="compute-2")
    workers.start("ingest")
    wait_until(lambda: truth.offline_mismatches(stream_settings), 150, workers, "offline history with two workers")
    # each worker ends up owning some of the partitions (the last assignment each logged; a rebalance may still
    # be going on when the values have converged, so wait for the assignments to settle)
    def split() -> list[str]:
        logs = [(workers.log_dir / f"{w}.log").read_text(errors="replace") for w in ("compute", "compute-2")]
        found = [re.findall(r"event partitions assigned: \[([\d, ]*)\]", text) for text in logs]
        owned = [set(map(int, f[-1].replace(",", " ").split())) if f else set() for f in found]
        whole = set(range(stream_settings.topic_partitions))
        return [] if all(owned) and not owned[0] & owned[1] and owned[0] | owned[1] == whole else [str(owned)]

    wait_until(split, 60, workers, "the two workers' event partitions")

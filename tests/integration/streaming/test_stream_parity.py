"""A simulated day through the real pipeline: the stream's offline rows equal the oracle and the batch engine.

Broker, Redis and DuckDB are real; the compute (Faust) and ingestion workers run as
subprocesses exactly as `riskpipe up` runs them.
"""

from __future__ import annotations

import pytest
from stream_harness import Truth, Workers, batch_engine_mismatches, online_mismatches, produce, simulate_day, wait_until

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

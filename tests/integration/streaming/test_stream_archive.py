"""The archiver under kill -9: every produced event is in the lake exactly once, in the simulator's layout."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from stream_harness import Workers, produce, simulate_day, wait_status

from events.contracts import AccountChange, Login, Transaction
from events.lake import read_topic
from riskpipe.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_archive_is_exactly_once_across_a_crash_and_compaction(stream_settings: Settings, workers: Workers) -> None:
    settings = stream_settings.model_copy(update={"archive_flush_s": 0.3, "archive_batch_rows": 80,
                                                  "lake_uri": str(stream_settings.data_dir / "archive-lake")})
    workers.settings = settings
    day = simulate_day(settings, accounts=20, seed=5)
    produce(settings, day.tables)

    workers.start("archive")
    wait_status(settings, "stream-archive", lambda s: s["counters"].get("archived", 0) >= 150, 60, workers)
    workers.kill9("archive")
    workers.start("archive")
    wait_status(settings, "stream-archive", lambda s: s["counters"].get("archived", 0) > 0, 60, workers)

    def archived(model: type) -> Counter[str]:
        try:
            return Counter(read_topic(str(settings.lake_uri), model.topic)["event_id"].to_pylist())
        except FileNotFoundError:
            return Counter()

    deadline = time.monotonic() + 60
    expected = {m: Counter(day.tables[m]["event_id"].to_pylist()) for m in (Transaction, Login, AccountChange)}
    while time.monotonic() < deadline and any(archived(m) != expected[m] for m in expected):
        time.sleep(0.5)
    workers.stop("archive")
    for model, want in expected.items():
        got = archived(model)
        assert got == want, f"{model.topic}: missing {sum((want - got).values())}, doubled {sum((got - want).values())}"

    result = subprocess.run([sys.executable, "-m", "riskpipe", "stream", "compact", "--min-files", "2"],
                            env=workers.env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "partition(s)" in result.stdout
    for model, want in expected.items():
        assert archived(model) == want
    files = list(Path(str(settings.lake_uri)).rglob("*.parquet"))
    folders = {f.parent for f in files}
    assert len(files) == len(folders)  # one file per hour partition after compaction

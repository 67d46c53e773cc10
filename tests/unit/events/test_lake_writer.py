"""Lake layout: <lake>/<topic>/dt=YYYY-MM-DD/hour=HH/*.parquet, partitioned by event_time."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pyarrow as pa

from events.lake import read_topic, write_partitioned


def test_rows_land_in_their_event_time_partition_and_read_back(tmp_path: Path) -> None:
    times = [datetime(2026, 1, 1, 23, 59), datetime(2026, 1, 2, 0, 1), datetime(2026, 1, 1, 23, 0)]
    table = pa.table({"event_id": ["b", "c", "a"], "event_time": pa.array(times, pa.timestamp("us"))})
    assert write_partitioned(str(tmp_path), "events.logins", table) == 3
    assert write_partitioned(str(tmp_path), "events.logins", table.slice(0, 1)) == 1  # appends, never overwrites
    folders = sorted(str(p.parent.relative_to(tmp_path)) for p in tmp_path.rglob("*.parquet"))
    assert folders == ["events.logins/dt=2026-01-01/hour=23", "events.logins/dt=2026-01-01/hour=23",
                       "events.logins/dt=2026-01-02/hour=00"]
    back = read_topic(str(tmp_path), "events.logins").sort_by("event_id")
    assert back["event_id"].to_pylist() == ["a", "b", "b", "c"]
    assert back["hour"].to_pylist() == ["23", "23", "23", "00"]

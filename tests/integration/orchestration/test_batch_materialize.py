"""Scheduled batch groups on real DuckDB + Redis: compute, validate what was written, publish online."""

from __future__ import annotations

from datetime import datetime, timedelta

import pyarrow.compute as pc
import pytest

from features.batch.engine import compute_range
from features.definitions.catalog import get_group
from features.materialize import run_batch_group, tick_bounds
from features.offline import DuckDBOfflineStore
from features.online.redis_store import RedisOnlineStore
from features.validation import FeatureValidationError

pytestmark = pytest.mark.integration

IP_HOURLY = get_group("ip_hourly")


def test_hourly_run_writes_the_interval_end_tick_offline_and_online(
        seeded: DuckDBOfflineStore, online: RedisOnlineStore, recent: datetime) -> None:
    start, end = recent - timedelta(hours=1), recent
    result = run_batch_group(seeded, online, IP_HOURLY, start, end, now=end + timedelta(minutes=5))

    expected = compute_range(seeded, IP_HOURLY, *tick_bounds(start, end))
    assert expected.num_rows > 0
    assert set(pc.unique(expected.column("event_time")).to_pylist()) == {end}
    assert result.offline_rows == expected.num_rows
    stored = seeded.query(f"SELECT * FROM {IP_HOURLY.table_name} ORDER BY ip")
    assert stored.num_rows == expected.num_rows
    # Online holds exactly the offline values, per entity.
    assert result.online_rows == stored.num_rows
    rows = stored.to_pylist()
    vectors = online.read_many([{"ip": r["ip"]} for r in rows], [IP_HOURLY], now=end + timedelta(minutes=5))
    for row, vector in zip(rows, vectors, strict=True):
        got = vector["ip_hourly"]
        assert got.status == "ok"
        assert got.values == {f.name: row[f.name] for f in IP_HOURLY.features}


def test_rerun_of_the_same_interval_replaces_rows(seeded: DuckDBOfflineStore, online: RedisOnlineStore,
                                                  recent: datetime) -> None:
    start, end = recent - timedelta(hours=2), recent - timedelta(hours=1)
    first = run_batch_group(seeded, online, IP_HOURLY, start, end)
    second = run_batch_group(seeded, online, IP_HOURLY, start, end)
    assert first.offline_rows == second.offline_rows > 0
    count = seeded.query(f"SELECT count(*) AS n FROM {IP_HOURLY.table_name}").column("n")[0].as_py()
    assert count == first.offline_rows


def test_failed_validation_stops_before_the_online_store(
        seeded: DuckDBOfflineStore, online: RedisOnlineStore, recent: datetime) -> None:
    start, end = recent - timedelta(hours=1), recent
    with pytest.raises(FeatureValidationError) as info:
        run_batch_group(seeded, online, IP_HOURLY, start, end, min_rows=10_000, now=end)
    assert "expect_table_row_count_to_be_between" in str(info.value)
    assert "expected at least 10000 row(s)" in str(info.value)
    some_ip = seeded.query(f"SELECT ip FROM {IP_HOURLY.table_name} LIMIT 1").column("ip")[0].as_py()
    assert online.read({"ip": some_ip}, [IP_HOURLY], now=end)["ip_hourly"].status == "missing"


def test_nightly_group_computes_the_midnight_tick(seeded: DuckDBOfflineStore, online: RedisOnlineStore,
                                                  recent: datetime) -> None:
    group = get_group("account_profile_nightly")
    midnight = recent.replace(hour=0)
    result = run_batch_group(seeded, online, group, midnight - timedelta(days=1), midnight)
    times = seeded.query(f"SELECT DISTINCT event_time FROM {group.table_name}").column(0).to_pylist()
    assert times == [midnight]
    assert result.offline_rows > 0

"""Backfill task functions on real DuckDB: idempotent per day, dry run writes nothing, registry plan."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from features.backfill import apply_plan, backfill_day, parse_request, resolve_groups, summarize
from features.definitions.catalog import FEATURE_GROUPS, get_group
from features.offline import DuckDBOfflineStore
from features.registry import Registry

pytestmark = pytest.mark.integration

GROUPS = ["account_txn_velocity", "ip_hourly"]


def _snapshot(store: DuckDBOfflineStore, name: str) -> list[dict]:
    group = get_group(name)
    cols = ", ".join([group.entity.join_key, "event_time", *(f.name for f in group.features)])
    return store.query(f"SELECT {cols} FROM {group.table_name} ORDER BY ALL").to_pylist()


def test_backfill_twice_leaves_identical_data(seeded: DuckDBOfflineStore, recent: datetime) -> None:
    days = [(recent - timedelta(days=1)).date().isoformat(), recent.date().isoformat()]
    first = [backfill_day(seeded, GROUPS, day) for day in days]
    before = {name: _snapshot(seeded, name) for name in GROUPS}
    second = [backfill_day(seeded, GROUPS, day) for day in days]
    after = {name: _snapshot(seeded, name) for name in GROUPS}

    assert before == after
    assert all(before[name] for name in GROUPS)
    assert summarize(first) == summarize(second)
    velocity = get_group("account_txn_velocity")
    # every seeded event lies in the two days; a windowed group has one row per (account, event time)
    distinct = seeded.query("SELECT count(*) FROM (SELECT DISTINCT account_id, event_time FROM events_transactions)"
                            ).column(0)[0].as_py()
    assert summarize(second)["groups"][0] == {"group": velocity.name, "version": 1, "table": velocity.table_name,
                                              "days": 2, "rows": distinct, "dry_run": False}


def test_dry_run_counts_without_writing(seeded: DuckDBOfflineStore, recent: datetime) -> None:
    day = recent.date().isoformat()
    results = backfill_day(seeded, ["ip_hourly"], day, dry_run=True)
    assert results[0]["rows"] > 0 and results[0]["dry_run"] is True
    assert not seeded.table_exists(get_group("ip_hourly").table_name)


def test_include_plan_backfills_unapplied_groups_then_records_them(seeded: DuckDBOfflineStore) -> None:
    request = parse_request({"groups": ["ip_hourly"], "start": "2024-01-01", "end": "2024-01-01",
                             "include_plan": True})
    names = resolve_groups(request, seeded)
    assert names[0] == "ip_hourly"
    assert set(names) == {g.name for g in FEATURE_GROUPS}  # nothing applied yet: every group is new
    applied = apply_plan(seeded)
    assert applied["apply_seq"] == 1
    assert resolve_groups(request, seeded) == ["ip_hourly"]  # the plan is now empty
    assert set(Registry(seeded).active()) == set(names)

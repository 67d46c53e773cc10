"""The rows behind the Airflow "Feature groups" page, from a real DuckDB store."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from features.backfill import apply_plan
from features.definitions.catalog import FEATURE_GROUPS, get_group
from features.group_status import group_status
from features.materialize import run_batch_group
from features.offline import DuckDBOfflineStore
from features.online.redis_store import RedisOnlineStore
from features.sync import sync_group

pytestmark = pytest.mark.integration


def test_status_reports_version_freshness_and_last_sync(seeded: DuckDBOfflineStore,
                                                        online: RedisOnlineStore, recent: datetime) -> None:
    ip = get_group("ip_hourly")
    now = recent + timedelta(minutes=30)
    run_batch_group(seeded, online, ip, recent - timedelta(hours=1), recent, now=now)
    sync_group(seeded, online, ip, run_id="r1", now=now)
    apply_plan(seeded)

    rows = {r["name"]: r for r in group_status(seeded, now=now)}
    assert list(rows) == [g.name for g in FEATURE_GROUPS]
    assert rows["ip_hourly"]["state"] == "fresh"
    assert rows["ip_hourly"]["freshness_s"] == 1800.0
    assert rows["ip_hourly"]["registry_version"] == 1 and rows["ip_hourly"]["schedule"] == "hourly"
    assert rows["ip_hourly"]["last_sync_at"] == now and rows["ip_hourly"]["mismatch_rate"] == 0.0
    assert rows["account_txn_velocity"]["state"] == "empty"
    later = {r["name"]: r for r in group_status(seeded, now=now + timedelta(hours=3))}
    assert later["ip_hourly"]["state"] == "stale"  # TTL 2h

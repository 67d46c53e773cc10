"""What the Airflow "Feature groups" page shows: version, schedule and freshness of every group.

Read-only and cheap: one ``max(event_time)`` per history table, the registry's current rows and
the newest ``sync_runs`` row per group. Freshness is "now minus the newest event time the
offline history describes"; a group is ``stale`` when that exceeds its TTL (serving would
return nothing for it) and ``empty`` when it was never materialized.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from features.definitions.catalog import FEATURE_GROUPS
from features.definitions.groups import FeatureGroup
from features.offline.base import OfflineStore, naive_utc
from features.registry import Registry
from features.sync import SYNC_RUNS_TABLE


def _last_sync(store: OfflineStore) -> dict[str, dict[str, Any]]:
    if not store.table_exists(SYNC_RUNS_TABLE):
        return {}
    rows = store.query(f"SELECT group_name, run_at, mismatch_rate, repaired_offline FROM {SYNC_RUNS_TABLE} "
                       "QUALIFY row_number() OVER (PARTITION BY group_name ORDER BY run_at DESC) = 1")
    return {r["group_name"]: r for r in rows.to_pylist()}


def group_status(store: OfflineStore, groups: Sequence[FeatureGroup] = FEATURE_GROUPS,
                 now: datetime | None = None) -> list[dict[str, Any]]:
    """One row per group in code order, with registry version, freshness and the last sync."""
    now = naive_utc(now or datetime.now(UTC))
    applied = Registry(store).current()
    syncs = _last_sync(store)
    rows = []
    for group in groups:
        latest = None
        if store.table_exists(group.table_name):
            latest = store.query(f"SELECT max(event_time) AS latest FROM {group.table_name}").column(0)[0].as_py()
        freshness = (now - naive_utc(latest)).total_seconds() if latest else None
        state = "empty" if latest is None else ("stale" if group.ttl and freshness > group.ttl.total_seconds()
                                                else "fresh")
        record = applied.get(group.name)
        sync = syncs.get(group.name, {})
        rows.append({
            "name": group.name, "version": group.version, "schedule": group.schedule,
            "entity": group.entity.name, "ttl_s": int(group.ttl.total_seconds()),
            "registry_version": record.version if record and record.status == "active" else None,
            "latest_event_time": latest, "freshness_s": freshness, "state": state,
            "last_sync_at": sync.get("run_at"), "mismatch_rate": sync.get("mismatch_rate"),
        })
    return rows

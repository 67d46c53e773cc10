"""Online <-> offline reconciliation, run every 10 minutes by ``dags/sync.py``.

For each feature group:

1. **Repair** (stream groups): the stream ingestion writes Redis and the offline history
   separately, so a crash between the two leaves values that were served but never recorded,
   which then silently vanish from training data. Online values newer than the group's offline
   history (or for entities the history lacks) are appended to the offline store; the
   append is keyed on (entity, event_time), so a repeated sync adds nothing.
2. **Measure** over the entities whose newest offline value is still within TTL: missing online,
   stale online (older event time than offline), and value mismatches at the same event time.
   ``mismatch_rate`` is their share; it measures training/serving skew at the storage level.
3. **Materialize** (hourly / nightly groups): the newest live offline values go to Redis.
4. **Record** one row per group in the offline table ``sync_runs`` (freshness, counts, rates):
   the monitoring layer and the Airflow "Feature groups" page read it.

Alerts for stale groups (newest value older than the TTL) or a mismatch rate above
``settings.sync_mismatch_alert_rate`` are published to the ``alerts`` topic by the DAG.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa

from features.definitions.groups import FeatureGroup
from features.materialize import BATCH_SCHEDULES, materialize_online
from features.offline.arrow_utils import TS
from features.offline.base import OfflineStore, naive_utc
from features.online.codec import decode_value
from features.online.lua import TS_FIELD
from features.online.redis_store import RedisOnlineStore
from features.types import feature_dtypes

log = logging.getLogger(__name__)

SYNC_RUNS_TABLE = "sync_runs"
SYNC_RUNS_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("run_at", TS), ("group_name", pa.string()), ("version", pa.int64()),
    ("schedule", pa.string()), ("ttl_s", pa.int64()), ("offline_entities", pa.int64()),
    ("online_entities", pa.int64()), ("missing_online", pa.int64()), ("stale_online", pa.int64()),
    ("value_mismatch", pa.int64()), ("mismatch_rate", pa.float64()), ("repaired_offline", pa.int64()),
    ("materialized_online", pa.int64()), ("latest_event_time", TS), ("freshness_s", pa.float64()),
])
_EPOCH = datetime(1970, 1, 1)
_SCAN_BATCH = 1000

Row = tuple[datetime, dict[str, Any]]  # (event_time, feature values)


@dataclass(frozen=True)
class SyncResult:
    run_id: str
    run_at: datetime
    group_name: str
    version: int
    schedule: str
    ttl_s: int
    offline_entities: int
    online_entities: int
    missing_online: int
    stale_online: int
    value_mismatch: int
    mismatch_rate: float
    repaired_offline: int
    materialized_online: int
    latest_event_time: datetime | None
    freshness_s: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly (XCom, alerts)."""
        out = asdict(self)
        for key in ("run_at", "latest_event_time"):
            out[key] = out[key].isoformat() if out[key] else None
        return out


# ---- online snapshot (adapter: RedisOnlineStore has no scan verb; reads its client and key layout) ------------


def scan_online(online: RedisOnlineStore, group: FeatureGroup) -> dict[str, Row]:
    """Every entity Redis holds for ``group``: key -> (event_time, typed values)."""
    client = online._redis  # the store exposes key() but no iteration; a SCAN is read-only
    prefix = online.key(group, "")
    dtypes = list(feature_dtypes(group).items())
    names = [TS_FIELD, *(n for n, _ in dtypes)]
    out: dict[str, Row] = {}
    keys = [k.decode() if isinstance(k, bytes) else k for k in client.scan_iter(match=f"{prefix}*", count=1000)]
    for lo in range(0, len(keys), _SCAN_BATCH):
        chunk = keys[lo:lo + _SCAN_BATCH]
        pipe = client.pipeline(transaction=False)
        for key in chunk:
            pipe.hmget(key, names)
        for key, (raw_ts, *raw) in zip(chunk, pipe.execute(), strict=True):
            if raw_ts is None:  # expired between SCAN and HMGET
                continue
            ts = _EPOCH + timedelta(microseconds=int(raw_ts))
            out[key[len(prefix):]] = (ts, {n: decode_value(v, d) for (n, d), v in zip(dtypes, raw, strict=True)})
    return out


# ---- offline side --------------------------------------------------------------------------------------------


def offline_latest(store: OfflineStore, group: FeatureGroup) -> dict[str, Row]:
    """Newest offline row per entity: key -> (event_time, values)."""
    key = group.entity.join_key
    names = [f.name for f in group.features]
    out: dict[str, Row] = {}
    for row in store.latest_features(group).to_pylist():
        out[str(row[key])] = (naive_utc(row["event_time"]), {n: row.get(n) for n in names})
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and math.isnan(a):
        a = None
    if isinstance(b, float) and math.isnan(b):
        b = None
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def repair_offline(store: OfflineStore, group: FeatureGroup, online: Mapping[str, Row],
                   offline: Mapping[str, Row]) -> tuple[int, dict[str, Row]]:
    """Append online values newer than the offline history; returns (rows inserted, rows considered)."""
    newer = {k: v for k, v in online.items() if k not in offline or v[0] > offline[k][0]}
    if not newer:
        return 0, {}
    key = group.entity.join_key
    batch = pa.Table.from_pylist([{key: k, "event_time": ts, **values} for k, (ts, values) in newer.items()])
    inserted = store.append_features(group, batch)
    log.info("repaired offline from online", extra={"group": group.name, "candidates": len(newer),
                                                     "inserted": inserted})
    return inserted, newer


def compare(group: FeatureGroup, online: Mapping[str, Row], offline: Mapping[str, Row],
            now: datetime) -> dict[str, int]:
    """Counts over live offline entities: missing online, stale online, value mismatch at equal time."""
    oldest = now - group.ttl if group.ttl else None
    live = {k: v for k, v in offline.items() if oldest is None or v[0] > oldest}
    missing = stale = mismatch = 0
    for k, (ts, values) in live.items():
        got = online.get(k)
        if got is None:
            missing += 1
        elif got[0] < ts:
            stale += 1
        elif got[0] == ts and not all(_same(values[n], got[1].get(n)) for n in values):
            mismatch += 1
    return {"offline_entities": len(live), "missing_online": missing, "stale_online": stale,
            "value_mismatch": mismatch}


# ---- one group, end to end -----------------------------------------------------------------------------------


def sync_group(store: OfflineStore, online: RedisOnlineStore, group: FeatureGroup, *, run_id: str,
               now: datetime | None = None, record: bool = True) -> SyncResult:
    """Repair, measure, materialize and record one group (see the module docstring)."""
    now = naive_utc(now or datetime.now(UTC))
    online_rows = scan_online(online, group)
    offline_rows = offline_latest(store, group)
    repaired = 0
    if group.schedule == "stream":
        repaired, newer = repair_offline(store, group, online_rows, offline_rows)
        offline_rows = {**offline_rows, **newer}
    counts = compare(group, online_rows, offline_rows, now)
    materialized = materialize_online(store, online, group, now) if group.schedule in BATCH_SCHEDULES else 0
    latest = max((ts for ts, _ in offline_rows.values()), default=None)
    bad = counts["missing_online"] + counts["stale_online"] + counts["value_mismatch"]
    result = SyncResult(
        run_id=run_id, run_at=now, group_name=group.name, version=group.version, schedule=group.schedule,
        ttl_s=int(group.ttl.total_seconds()), online_entities=len(online_rows),
        mismatch_rate=bad / counts["offline_entities"] if counts["offline_entities"] else 0.0,
        repaired_offline=repaired, materialized_online=materialized, latest_event_time=latest,
        freshness_s=(now - latest).total_seconds() if latest else None, **counts,
    )
    if record:
        record_sync_runs(store, [result])
    log.info("synced feature group", extra=result.to_dict())
    return result


def record_sync_runs(store: OfflineStore, results: Sequence[SyncResult]) -> int:
    """Append results to ``sync_runs`` (created on first use)."""
    rows = [asdict(r) for r in results]
    store.create_table(SYNC_RUNS_TABLE, SYNC_RUNS_SCHEMA)
    return store.append(SYNC_RUNS_TABLE, pa.Table.from_pylist(rows, schema=SYNC_RUNS_SCHEMA))


# ---- alerts ----------------------------------------------------------------------------------------------------


def sync_alerts(results: Sequence[Mapping[str, Any]], max_mismatch_rate: float) -> list[dict[str, Any]]:
    """Alerts for stale groups (newest value older than TTL) and mismatch rates above the threshold."""
    alerts = []
    for r in results:
        if r["freshness_s"] is not None and r["ttl_s"] and r["freshness_s"] > r["ttl_s"]:
            alerts.append({"alert": "feature_group_stale", "group": r["group_name"], "version": r["version"],
                           "freshness_s": r["freshness_s"], "ttl_s": r["ttl_s"], "run_id": r["run_id"]})
        if r["mismatch_rate"] > max_mismatch_rate:
            alerts.append({"alert": "online_offline_mismatch", "group": r["group_name"], "version": r["version"],
                           "mismatch_rate": r["mismatch_rate"], "threshold": max_mismatch_rate,
                           "run_id": r["run_id"]})
    return alerts


def alert_messages(results: Sequence[Mapping[str, Any]],
                   max_mismatch_rate: float | None = None) -> Iterator[tuple[str, str]]:
    """(key, value) pairs for ``ProduceToTopicOperator``; nothing when every group is healthy.

    The threshold defaults to ``settings.sync_mismatch_alert_rate``, read when the task runs.
    """
    if max_mismatch_rate is None:
        from riskpipe.settings import get_settings

        max_mismatch_rate = get_settings().sync_mismatch_alert_rate
    for alert in sync_alerts(list(results), max_mismatch_rate):
        yield alert["group"], json.dumps(alert, sort_keys=True)

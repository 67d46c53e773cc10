"""Scheduled batch feature groups: compute on the OLAP source, validate, publish to the online store.

One function per step, called by the batch DAGs (``dags/batch_features.py``) through the
``MaterializeOperator``, and directly by the tests:

1. ``compute_group`` (the batch engine) rewrites the group's offline history for the run;
2. the rows just written are read back and checked (``features.validation``): a bad batch
   fails the task *before* it reaches serving;
3. the newest offline value per entity (within TTL) is written to Redis, newest-wins, so a
   late or repeated run never overwrites fresher values.

Interval convention: an Airflow run for the data interval ``[start, end)`` starts at ``end``
and computes the schedule tick *at* ``end`` (the values describing ``(end - lookback, end]``),
i.e. the ticks in ``(start, end]``; the batch engine itself works on half-open ``[a, b)``
ranges, hence the one-microsecond shift in ``tick_bounds``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc

from features.batch.engine import compute_group
from features.definitions.catalog import FEATURE_GROUPS
from features.definitions.groups import FeatureGroup, SqlFeatureGroup
from features.offline.base import OfflineStore, naive_utc
from features.online.redis_store import RedisOnlineStore
from features.validation import check_batch
from riskpipe.errors import UsageError

log = logging.getLogger(__name__)

EPSILON = timedelta(microseconds=1)
BATCH_SCHEDULES = ("hourly", "nightly")


@dataclass(frozen=True)
class MaterializeResult:
    group: str
    version: int
    start: str
    end: str
    offline_rows: int
    online_rows: int

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def batch_groups(schedule: str, groups: Sequence[FeatureGroup] = FEATURE_GROUPS) -> list[SqlFeatureGroup]:
    """The SQL groups that run on ``schedule`` (hourly | nightly), in catalog order."""
    if schedule not in BATCH_SCHEDULES:
        raise UsageError(f"schedule {schedule!r}: batch schedules are {', '.join(BATCH_SCHEDULES)}")
    return [g for g in groups if isinstance(g, SqlFeatureGroup) and g.schedule == schedule]


def tick_bounds(interval_start: datetime, interval_end: datetime) -> tuple[datetime, datetime]:
    """``[a, b)`` for the batch engine that holds exactly the ticks in ``(interval_start, interval_end]``."""
    start, end = naive_utc(interval_start), naive_utc(interval_end)
    if start >= end:
        raise UsageError(f"data interval: start {start} must be before end {end}")
    return start + EPSILON, end + EPSILON


def read_history(store: OfflineStore, group: FeatureGroup, start: datetime, end: datetime) -> pa.Table:
    """The group's offline rows with ``start <= event_time < end`` (what a run just wrote)."""
    if not store.table_exists(group.table_name):
        raise UsageError(f"feature group {group.name!r}: offline table {group.table_name} does not exist")
    return store.query(f"SELECT * FROM {group.table_name} WHERE event_time >= ? AND event_time < ? "
                       f"ORDER BY event_time, {group.entity.join_key}", [naive_utc(start), naive_utc(end)])


def live_latest(store: OfflineStore, group: FeatureGroup, as_of: datetime) -> pa.Table:
    """Newest offline row per entity as of ``as_of`` that is still within the group's TTL."""
    as_of = naive_utc(as_of)
    latest = store.latest_features(group, as_of)
    if latest.num_rows == 0 or not group.ttl:
        return latest
    oldest = pa.scalar(as_of - group.ttl, latest.schema.field("event_time").type)
    return latest.filter(pc.greater(latest.column("event_time"), oldest))


def materialize_online(store: OfflineStore, online: RedisOnlineStore, group: FeatureGroup,
                       as_of: datetime | None = None) -> int:
    """Write the newest live offline values of ``group`` to Redis; returns the rows Redis applied."""
    rows = live_latest(store, group, as_of or datetime.now(UTC))
    if rows.num_rows == 0:
        return 0
    written = online.write_batch(group, rows.drop_columns(["created_at"]))
    log.info("materialized online", extra={"group": group.name, "rows": rows.num_rows, "applied": written})
    return written


def run_batch_group(store: OfflineStore, online: RedisOnlineStore, group: FeatureGroup,
                    interval_start: datetime, interval_end: datetime, *, min_rows: int = 1,
                    now: datetime | None = None) -> MaterializeResult:
    """One scheduled run of a batch group: compute -> validate what was written -> online.

    Raises ``FeatureValidationError`` (with the readable report) when the written batch fails
    its checks; the online store is then left untouched.
    """
    start, end = tick_bounds(interval_start, interval_end)
    written = compute_group(store, group, start, end)
    check_batch(group, read_history(store, group, start, end), start, end, min_rows=min_rows)
    # Values describe the tick at interval_end; publish what is live now (a catch-up run for an
    # old interval must not push expired values, and newest-wins keeps fresher ones in Redis).
    as_of = max(naive_utc(now or datetime.now(UTC)), naive_utc(interval_end))
    online_rows = materialize_online(store, online, group, as_of)
    result = MaterializeResult(group.name, group.version, start.isoformat(), end.isoformat(), written, online_rows)
    log.info("batch group run", extra=result.to_dict())
    return result

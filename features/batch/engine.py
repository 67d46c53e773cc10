"""Batch engine: compute feature groups from the raw event tables of an offline store.

Two verbs:

* ``compute_at_points(store, group, points)``: a windowed group's features at arbitrary
  (entity key, as-of time) points, straight from the raw events: PIT values for groups that
  were never materialized, and the reference the stream engine is compared with.
* ``compute_group(store, group, start, end)``: materialize a group into its offline table
  ``fg_<name>_v<version>`` for ``start <= event_time < end`` (the Airflow backfill calls it).
  Windowed groups get one row per source event in the range (the value right after each
  event, as the stream engine emits it); SQL groups one row per entity per schedule tick
  (hourly ticks on the hour, nightly at 00:00 UTC). Idempotent: the range is deleted and
  rewritten, so a rerun replaces, never duplicates; on DuckDB both happen in one transaction
  (see features.store_tx for why Snowflake cannot promise that).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from features.batch.dialect import Dialect, get_dialect
from features.batch.sql import event_points_sql, render_sql_group, staged_points_sql, windowed_sql
from features.definitions.groups import FeatureGroup, SqlFeatureGroup, WindowedFeatureGroup
from features.offline.arrow_utils import ARROW_BY_DTYPE, TS, cast_column, normalize_timestamps, to_arrow
from features.offline.base import OfflineStore, group_schema, naive_utc
from features.store_tx import atomic
from riskpipe.errors import UsageError

log = logging.getLogger(__name__)

TICK = {"hourly": timedelta(hours=1), "nightly": timedelta(days=1)}
TICKS_PER_QUERY = 24  # SQL-group runs batched into one UNION ALL query


def output_schema(group: FeatureGroup) -> pa.Schema:
    """Join key, event_time, then the typed features (the history table minus created_at)."""
    fields = [pa.field(group.entity.join_key, pa.string()), pa.field("event_time", TS)]
    return pa.schema(fields + [pa.field(f.name, ARROW_BY_DTYPE[f.dtype]) for f in group.features])


def _conform(result: pa.Table, schema: pa.Schema, what: str) -> pa.Table:
    """Cast a query result to the declared dtypes; a SQL group returning a wrong column fails here, by name."""
    missing = [name for name in schema.names if name not in result.column_names]
    if missing:
        raise UsageError(f"{what}: the query returned no column(s) {missing}")
    result = normalize_timestamps(result)
    return pa.table([cast_column(result, f.name, f.type, what) for f in schema], schema=schema)


def _dialect(store: OfflineStore) -> Dialect:
    return get_dialect(getattr(store, "dialect", "duckdb"))


def _require_table(store: OfflineStore, table: str, group: FeatureGroup) -> None:
    if not store.table_exists(table):
        raise UsageError(f"feature group {group.name!r}: raw table {table!r} does not exist in the offline store")


def _windowed(group: FeatureGroup, verb: str) -> WindowedFeatureGroup:
    if not isinstance(group, WindowedFeatureGroup):
        raise UsageError(f"feature group {group.name!r} is a {group.schedule} SQL group: {verb} needs a windowed group")
    return group


def compute_at_points(store: OfflineStore, group: FeatureGroup, points: Any, as_of_column: str = "as_of") -> pa.Table:
    """Features of a windowed group at each distinct (join key, as-of) point, sorted by key and time.

    ``points`` is an arrow table or pandas frame with the group's join key column and
    ``as_of_column`` (naive UTC or tz-aware timestamps). The output has one row per distinct point.
    """
    group = _windowed(group, "compute_at_points")
    key = group.entity.join_key
    schema = output_schema(group)
    table = normalize_timestamps(to_arrow(points, "points"))
    for column in (key, as_of_column):
        if column not in table.column_names:
            raise UsageError(f"points: missing column {column!r} (have {table.column_names})")
        if table.column(column).null_count:
            raise UsageError(f"points: column {column!r} has null values")
    as_of_type = table.schema.field(as_of_column).type
    if not pa.types.is_timestamp(as_of_type):
        raise UsageError(f"points: column {as_of_column!r} must be a timestamp, got {as_of_type}")
    if table.num_rows == 0:
        return schema.empty_table()
    _require_table(store, group.source.table, group)
    staged = pa.table({key: cast_column(table, key, pa.string(), "points"),
                       as_of_column: cast_column(table, as_of_column, TS, "points")})
    lo, hi = pc.min_max(staged.column(as_of_column)).values()
    name = f"tmp_points_{uuid.uuid4().hex[:12]}"
    store.append(name, staged)
    try:
        sql = windowed_sql(group, staged_points_sql(name, key, as_of_column), lo.as_py(), hi.as_py(), _dialect(store))
        result = store.query(sql)
    finally:
        store.execute(f"DROP TABLE IF EXISTS {name}")
    return _conform(result, schema, f"feature group {group.name!r}")


def schedule_ticks(group: SqlFeatureGroup, start: datetime, end: datetime) -> list[datetime]:
    """The group's run times in ``[start, end)``: on the hour (hourly) or at 00:00 UTC (nightly)."""
    step = TICK[group.schedule]
    first = start.replace(minute=0, second=0, microsecond=0)
    if group.schedule == "nightly":
        first = first.replace(hour=0)
    if first < start:
        first += step
    ticks = []
    while first < end:
        ticks.append(first)
        first += step
    return ticks


def _chunks(items: list[datetime], size: int) -> Iterator[list[datetime]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def compute_range(store: OfflineStore, group: FeatureGroup, start: datetime, end: datetime) -> pa.Table:
    """The rows ``compute_group`` would write for ``[start, end)``, without writing them."""
    start, end = naive_utc(start), naive_utc(end)
    if start >= end:
        raise UsageError(f"compute range: start {start} must be before end {end}")
    schema = output_schema(group)
    dialect = _dialect(store)
    what = f"feature group {group.name!r}"
    if isinstance(group, WindowedFeatureGroup):
        _require_table(store, group.source.table, group)
        result = store.query(windowed_sql(group, event_points_sql(group, start, end, dialect), start, end, dialect))
        return _conform(result, schema, what)
    parts = [schema.empty_table()]
    for ticks in _chunks(schedule_ticks(group, start, end), TICKS_PER_QUERY):
        sql = "\nUNION ALL\n".join(render_sql_group(group, tick, dialect) for tick in ticks)
        try:
            result = store.query(sql)
        except Exception as exc:  # the author's SQL failed: name the group, keep the engine's message
            raise UsageError(f"{what}: SQL failed: {exc}") from exc
        parts.append(_conform(result, schema, what))
    return pa.concat_tables(parts)


def compute_group(store: OfflineStore, group: FeatureGroup, start: datetime, end: datetime) -> int:
    """Materialize ``group`` into ``fg_<name>_v<version>`` for ``[start, end)``; returns the rows written.

    Deletes the range first and writes the recomputed rows in the same transaction, so running
    it twice leaves the same table (idempotent backfill).
    """
    start, end = naive_utc(start), naive_utc(end)
    rows = compute_range(store, group, start, end)
    table = group.table_name
    created = rows.append_column("created_at", pa.array([naive_utc(datetime.now(UTC))] * rows.num_rows, TS))
    store.create_table(table, group_schema(group))
    with atomic(store):
        store.execute(f"DELETE FROM {table} WHERE event_time >= ? AND event_time < ?", [start, end])
        written = store.append_features(group, created)
    log.info("materialized feature group",
             extra={"group": group.name, "table": table, "start": str(start), "end": str(end), "rows": written})
    return written

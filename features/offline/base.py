"""The offline store interface: one set of verbs, two backends (DuckDB default, Snowflake).

Like Feast's per-backend store classes, a backend implements a handful of primitives
(``append``, ``query``, ``execute``, ``table_exists``, ``close`` and the staging/PIT hooks);
the feature-group verbs (``append_features``, ``latest_features``) are written once here in
SQL both dialects accept (``QUALIFY``, ``NOT EXISTS``, ``?`` placeholders), so the backends
cannot drift apart in semantics.

Feature history tables (``fg_<name>_v<version>``) are append-only and unique on
``(join_key, event_time)``: ``append_features`` is the single writer and skips rows whose key
already exists (the first write wins), which turns the ingestion worker's at-least-once
delivery into an exactly-once effect. PIT retrieval relies on that uniqueness.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from features.offline.arrow_utils import ARROW_BY_DTYPE, TS, cast_column, normalize_timestamps, to_arrow
from features.offline.pit_sql import PitGroup
from features.types import FeatureGroupLike, check_identifier, feature_dtypes, group_table
from riskpipe.errors import UsageError

log = logging.getLogger(__name__)

POS_COL = "__rp_pos"  # staging-only column: arrival order inside a batch, for first-wins dedupe


def naive_utc(value: datetime) -> datetime:
    """Aware -> naive UTC; naive values are taken to be UTC already (the storage convention)."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def group_schema(group: FeatureGroupLike, key_type: pa.DataType = pa.string()) -> pa.Schema:
    """Canonical history-table schema: join key, event_time, created_at, then the typed features."""
    dtypes = feature_dtypes(group)
    key = check_identifier(group.entity.join_key, f"feature group {group.name!r}: join key")
    reserved = {key, "event_time", "created_at"} & set(dtypes)
    if reserved:
        raise UsageError(f"feature group {group.name!r}: feature name(s) {sorted(reserved)} clash with key columns")
    return pa.schema(
        [pa.field(key, key_type), pa.field("event_time", TS), pa.field("created_at", TS)]
        + [pa.field(name, ARROW_BY_DTYPE[dtype]) for name, dtype in dtypes.items()]
    )


class OfflineStore(ABC):
    """Append-only analytical store for raw events, labels and feature-group history."""

    dialect: str

    # ---- primitives every backend implements -------------------------------------------------
    @abstractmethod
    def append(self, table: str, data: pa.Table) -> int:
        """Append rows (by column name); create the table from the arrow schema when missing."""

    @abstractmethod
    def query(self, sql: str, params: Sequence[Any] | None = None) -> pa.Table:
        """Run a SELECT (``?`` placeholders) and return the result as arrow, lower-case column names."""

    @abstractmethod
    def execute(self, sql: str, params: Sequence[Any] | None = None) -> None:
        """Run a statement that returns nothing useful (DDL, DELETE, ...)."""

    @abstractmethod
    def table_exists(self, name: str) -> bool:
        """Whether a table (or view) of that name exists in the store's schema."""

    @abstractmethod
    def close(self) -> None:
        """Release the connection; the object is unusable afterwards."""

    @abstractmethod
    def create_table(self, name: str, schema: pa.Schema) -> None:
        """Create an empty table with the arrow schema's columns, unless it exists."""

    @abstractmethod
    def _stage(self, data: pa.Table) -> AbstractContextManager[str]:
        """Make ``data`` queryable under a temporary name for the duration of the block."""

    @abstractmethod
    def _insert_count(self, sql: str, params: Sequence[Any] | None = None) -> int:
        """Run an INSERT ... SELECT and return the number of rows it inserted."""

    @abstractmethod
    def point_in_time(self, labels: pa.Table, groups: Sequence[PitGroup], time_col: str) -> pa.Table:
        """PIT-join ``labels`` (with a ``__rp_row`` position column) to the groups; see ``features.pit``.

        Returns ``__rp_row`` + the feature columns, one row per label, in any order.
        """

    # ---- feature-group verbs, shared by every backend ---------------------------------------------
    def append_features(self, group: FeatureGroupLike, data: Any) -> int:
        """Append a batch to the group's history, skipping rows whose (join_key, event_time) exists.

        Returns the number of rows actually inserted, so a replayed batch returns 0. Within a
        batch the first occurrence of a key wins, matching "the stored row wins" across batches.
        ``created_at`` is filled with the current time when the batch has none.
        """
        table = self._conform(group, data)
        name = group_table(group)
        key = group.entity.join_key
        self.create_table(name, table.schema)
        if table.num_rows == 0:
            return 0
        staged = table.append_column(POS_COL, pa.array(range(table.num_rows), pa.int64()))
        cols = ", ".join(table.column_names)
        with self._stage(staged) as stage:
            inserted = self._insert_count(
                f"INSERT INTO {name} ({cols}) SELECT {cols} FROM {stage} s "
                f"WHERE NOT EXISTS (SELECT 1 FROM {name} t WHERE t.{key} = s.{key} AND t.event_time = s.event_time) "
                f"QUALIFY row_number() OVER (PARTITION BY s.{key}, s.event_time ORDER BY s.{POS_COL}) = 1"
            )
        log.info("appended features", extra={"table": name, "rows": table.num_rows, "inserted": inserted})
        return inserted

    def latest_features(self, group: FeatureGroupLike, as_of: datetime | None = None) -> pa.Table:
        """Newest row per entity (optionally as of a time, inclusive): what the online store should hold."""
        name = group_table(group)
        if not self.table_exists(name):
            return group_schema(group).empty_table()
        key = group.entity.join_key
        where, params = ("WHERE event_time <= ? ", [naive_utc(as_of)]) if as_of is not None else ("", None)
        return self.query(
            f"SELECT * FROM {name} {where}"
            f"QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY event_time DESC, created_at DESC) = 1",
            params,
        )

    def _conform(self, group: FeatureGroupLike, data: Any) -> pa.Table:
        """Validate and cast a batch to the group's schema; errors name the offending column."""
        what = f"feature group {group.name!r}"
        table = normalize_timestamps(to_arrow(data, what))
        key = group.entity.join_key
        if key not in table.column_names:
            raise UsageError(f"{what}: batch has no join key column {key!r}")
        key_type = table.schema.field(key).type
        schema = group_schema(group, pa.string() if pa.types.is_null(key_type) else key_type)
        extra = set(table.column_names) - set(schema.names)
        if extra:
            raise UsageError(f"{what}: unknown column(s) {sorted(extra)}; expected {schema.names}")
        columns = []
        for field in schema:
            if field.name in table.column_names:
                columns.append(cast_column(table, field.name, field.type, what))
            elif field.name == "created_at":
                columns.append(pa.array([naive_utc(datetime.now(UTC))] * table.num_rows, TS))
            elif field.name == "event_time":
                raise UsageError(f"{what}: batch has no 'event_time' column")
            else:  # a feature the producer did not compute: stored as null, not invented
                columns.append(pa.nulls(table.num_rows, field.type))
        out = pa.table(columns, schema=schema)
        for required in (key, "event_time"):
            if out.column(required).null_count:
                raise UsageError(f"{what}: column {required!r} has {out.column(required).null_count} null value(s)")
        return out

    # ---- context manager sugar -------------------------------------------------------------------
    def __enter__(self) -> OfflineStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

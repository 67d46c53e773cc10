"""Snowflake offline store (production backend), on snowflake-connector-python.

Bulk loads go through ``write_pandas`` (PUT of Parquet to a temporary stage + COPY INTO) into
tables this module creates explicitly from the arrow schema; PIT retrieval stages the labels in
a temporary table and runs one generated ``ASOF JOIN ... MATCH_CONDITION`` query. Identifiers
are unquoted (Snowflake upper-cases them), and result column names are lower-cased so callers
see the same names as with DuckDB. Placeholders are ``?`` (the connection uses ``qmark``).
Credentials come only from ``Settings`` (``RISKPIPE_SNOWFLAKE_*``).

Verified without an account, with fakesnow (DuckDB underneath): table creation, ``append``,
``query``/``execute`` with qmark binding, ``table_exists``, ``append_features`` dedupe (staging
temp table + ``INSERT ... WHERE NOT EXISTS ... QUALIFY``), ``latest_features``.
NOT verified against real Snowflake:
- the PIT query: fakesnow cannot parse ``ASOF JOIN ... MATCH_CONDITION``; the tests assert the
  generated SQL and check its semantics by transpiling it to DuckDB with sqlglot;
- ``write_pandas`` with ``use_logical_type=True`` loading TIMESTAMP_NTZ through a real stage;
- ``fetch_arrow_all`` (fakesnow lacks it; the pandas fallback below is what ran in tests);
- warehouse sizing, clustering keys on ``(join_key, event_time)``, and concurrency: two writers
  running ``append_features`` at the same instant could both insert the same key (no MERGE lock).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pyarrow as pa
import snowflake.connector
import snowflake.connector.pandas_tools

from features.offline.arrow_utils import normalize_timestamps, to_arrow
from features.offline.base import OfflineStore
from features.offline.pit_sql import PitGroup, snowflake_pit_sql
from features.types import check_identifier
from riskpipe.errors import UsageError
from riskpipe.settings import Settings

log = logging.getLogger(__name__)


def snowflake_type(field: pa.Field) -> str:
    """Arrow type -> Snowflake column type; unknown types are refused with the column's name."""
    t = field.type
    if pa.types.is_integer(t):
        return "NUMBER(38,0)"
    if pa.types.is_floating(t):
        return "FLOAT"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "VARCHAR"
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    if pa.types.is_timestamp(t):
        return "TIMESTAMP_NTZ"
    if pa.types.is_date(t):
        return "DATE"
    if pa.types.is_null(t):  # an all-null column in a first batch: keep it flexible
        return "VARCHAR"
    raise UsageError(f"column {field.name!r}: arrow type {t} has no Snowflake mapping")


def create_table_sql(name: str, schema: pa.Schema, *, temporary: bool = False) -> str:
    cols = ", ".join(f"{check_identifier(f.name, 'column name')} {snowflake_type(f)}" for f in schema)
    kind = "TEMPORARY TABLE" if temporary else "TABLE"
    return f"CREATE {kind} IF NOT EXISTS {name} ({cols})"


class SnowflakeOfflineStore(OfflineStore):
    dialect = "snowflake"

    def __init__(self, **connect_kwargs: Any) -> None:
        connect_kwargs.setdefault("paramstyle", "qmark")
        self._conn = snowflake.connector.connect(**connect_kwargs)
        self._lock = threading.RLock()

    @classmethod
    def from_settings(cls, settings: Settings) -> SnowflakeOfflineStore:
        """Connect with the ``RISKPIPE_SNOWFLAKE_*`` settings; a missing one is named in the error."""
        required = ("snowflake_account", "snowflake_user", "snowflake_database")
        missing = [f"RISKPIPE_{name.upper()}" for name in required if not getattr(settings, name)]
        if missing:
            raise UsageError(f"offline_backend=snowflake needs {', '.join(missing)}")
        kwargs: dict[str, Any] = {
            "account": settings.snowflake_account,
            "user": settings.snowflake_user,
            "database": settings.snowflake_database,
            "schema": settings.snowflake_schema,
        }
        if settings.snowflake_password is not None:
            kwargs["password"] = settings.snowflake_password.get_secret_value()
        if settings.snowflake_warehouse:
            kwargs["warehouse"] = settings.snowflake_warehouse
        if settings.snowflake_role:
            kwargs["role"] = settings.snowflake_role
        return cls(**kwargs)

    # ---- primitives ---------------------------------------------------------------------------
    def append(self, table: str, data: Any) -> int:
        check_identifier(table, "table name")
        arrow = normalize_timestamps(to_arrow(data, f"append to {table!r}"))
        with self._lock:
            self.create_table(table, arrow.schema)
            return self._load(table, arrow)

    def create_table(self, name: str, schema: pa.Schema) -> None:
        check_identifier(name, "table name")
        self._run(create_table_sql(name, schema))

    def query(self, sql: str, params: Sequence[Any] | None = None) -> pa.Table:
        with self._lock, self._conn.cursor() as cur:
            cur.execute(sql, list(params) if params is not None else None)
            fetch_arrow = getattr(cur, "fetch_arrow_all", None)
            if fetch_arrow is not None:  # the real connector: arrow straight from the result batches
                table = fetch_arrow(force_return_table=True)
            else:  # fakesnow has no fetch_arrow_all
                table = pa.Table.from_pandas(cur.fetch_pandas_all(), preserve_index=False)
        table = normalize_timestamps(table)
        return table.rename_columns([c.lower() for c in table.column_names])

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> None:
        self._run(sql, params)

    def table_exists(self, name: str) -> bool:
        rows = self._run(
            "SELECT count(*) FROM information_schema.tables "
            "WHERE table_schema = current_schema() AND table_name = upper(?)",
            [name],
        )
        return bool(rows and rows[0][0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # ---- hooks for the shared verbs -----------------------------------------------------------------
    def _run(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        with self._lock, self._conn.cursor() as cur:
            cur.execute(sql, list(params) if params is not None else None)
            try:
                return list(cur.fetchall())
            except snowflake.connector.errors.Error:  # DDL without a result set
                return []

    def _load(self, table: str, arrow: pa.Table) -> int:
        """Bulk load through write_pandas (Parquet PUT + COPY INTO) into an existing table."""
        if arrow.num_rows == 0:
            return 0
        frame = arrow.to_pandas()
        ok, _, nrows, _ = snowflake.connector.pandas_tools.write_pandas(
            self._conn, frame, table_name=table.upper(), quote_identifiers=False, use_logical_type=True
        )
        if not ok:
            raise RuntimeError(f"write_pandas into {table} reported failure")
        return int(nrows)

    @contextmanager
    def _stage(self, data: pa.Table) -> Iterator[str]:
        name = f"rp_stage_{uuid.uuid4().hex[:12]}"
        with self._lock:
            self._run(create_table_sql(name, data.schema, temporary=True))
            try:
                self._load(name, data)
                yield name
            finally:
                self._run(f"DROP TABLE IF EXISTS {name}")

    def _insert_count(self, sql: str, params: Sequence[Any] | None = None) -> int:
        with self._lock, self._conn.cursor() as cur:
            cur.execute(sql, list(params) if params is not None else None)
            return int(cur.rowcount or 0)

    def point_in_time(self, labels: pa.Table, groups: Sequence[PitGroup], time_col: str) -> pa.Table:
        with self._lock, self._stage(labels) as stage:
            return self.query(snowflake_pit_sql(stage, list(groups), time_col))

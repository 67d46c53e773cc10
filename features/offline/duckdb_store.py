"""DuckDB offline store: the embedded default, one file under the data dir.

Arrow frames are registered with the connection (zero-copy) and moved with set-based SQL
(``INSERT ... BY NAME SELECT``), so appends and PIT joins never loop over rows in Python.
A DuckDB connection must not be used from two threads at once, hence the lock; DuckDB also
allows one writing process per file, so workers that share a file must take turns.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from features.offline.arrow_utils import concrete_schema, normalize_timestamps, to_arrow
from features.offline.base import OfflineStore
from features.offline.pit_sql import PitGroup, duckdb_pit_sql
from features.types import check_identifier
from riskpipe.errors import UsageError


class DuckDBOfflineStore(OfflineStore):
    dialect = "duckdb"

    def __init__(self, path: Path | str = ":memory:", *, threads: int | None = None) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = str(path)
        self._con = duckdb.connect(self.path)
        if threads:
            self._con.execute(f"SET threads = {int(threads)}")
        self._lock = threading.RLock()

    # ---- primitives ---------------------------------------------------------------------------
    def append(self, table: str, data: Any) -> int:
        check_identifier(table, "table name")
        arrow = normalize_timestamps(to_arrow(data, f"append to {table!r}"))
        with self._lock:
            self.create_table(table, arrow.schema)
            if arrow.num_rows == 0:
                return 0
            with self._stage(arrow) as stage:
                try:
                    self._run(f"INSERT INTO {table} BY NAME SELECT * FROM {stage}")
                except duckdb.Error as exc:  # schema drift: name the table, not a C++ frame
                    raise UsageError(f"append to {table!r}: {exc}") from exc
        return arrow.num_rows

    def create_table(self, name: str, schema: pa.Schema) -> None:
        check_identifier(name, "table name")
        with self._lock, self._stage(concrete_schema(schema).empty_table()) as stage:
            self._run(f"CREATE TABLE IF NOT EXISTS {name} AS SELECT * FROM {stage} LIMIT 0")

    def query(self, sql: str, params: Sequence[Any] | None = None) -> pa.Table:
        with self._lock:
            relation = self._con.sql(sql, params=list(params) if params is not None else None)
            # DDL gives None on older DuckDB and a Count relation on DuckDB 2; both are "no rows".
            return pa.table({}) if relation is None else relation.to_arrow_table()

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> None:
        self._run(sql, params)

    def table_exists(self, name: str) -> bool:
        rows = self._run(
            "SELECT count(*) FROM information_schema.tables "
            "WHERE lower(table_name) = lower(?) AND table_schema = current_schema()",
            [name],
        )
        return bool(rows[0][0])

    def close(self) -> None:
        with self._lock:
            self._con.close()

    def _run(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        """Execute and drain: DuckDB 2 refuses new work on a connection while a result is half-read."""
        with self._lock:
            return self._con.execute(sql, list(params) if params is not None else []).fetchall()

    # ---- hooks for the shared verbs -----------------------------------------------------------------
    @contextmanager
    def _stage(self, data: pa.Table) -> Iterator[str]:
        name = f"__rp_stage_{uuid.uuid4().hex[:12]}"
        with self._lock:
            self._con.register(name, data)
            try:
                yield name
            finally:
                self._con.unregister(name)

    def _insert_count(self, sql: str, params: Sequence[Any] | None = None) -> int:
        rows = self._run(sql, params)
        return int(rows[0][0]) if rows else 0

    def point_in_time(self, labels: pa.Table, groups: Sequence[PitGroup], time_col: str) -> pa.Table:
        with self._lock, self._stage(labels) as stage:
            return self._con.sql(duckdb_pit_sql(stage, list(groups), time_col)).to_arrow_table()

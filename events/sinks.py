"""Where generated or replayed event tables go: the lake + offline store, or Kafka.

Both the simulator and the replay loader hand over Arrow tables per contract, so one
writer serves both. ``HistoryWriter`` appends to the raw offline tables
(``events_transactions`` ...) and the lake partitions; ``produce_in_time_order`` validates
each row with its pydantic contract (the edge: nothing unvalidated reaches a topic) and
produces one merged, event-time-ordered stream, labels ordered by when they became known.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from functools import cache
from typing import Any

import pyarrow as pa
from pydantic import TypeAdapter

from events.contracts import Event, FraudLabel
from events.lake import write_partitioned
from events.producer import EventProducer
from events.schemas import to_records
from riskpipe.settings import Settings

log = logging.getLogger(__name__)


class HistoryWriter:
    """Appends tables to the lake and the offline store, overlapping I/O with generation.

    Parquet encoding and DuckDB inserts release the GIL, so the lake and the offline store
    are written on two background threads while the caller generates the next window.
    At most one batch is in flight (bounded memory); an error in either thread is raised
    by the next ``write_all``/``flush``, never lost.
    """

    def __init__(self, settings: Settings, *, lake: bool = True, offline: bool = True) -> None:
        self.lake_uri = settings.lake_uri if lake else None
        self._store: Any = None
        if offline:
            from features.offline import get_offline_store

            self._store = get_offline_store(settings)
            if getattr(self._store, "dialect", "") == "duckdb":  # its progress bar would garble our output
                self._store.execute("SET enable_progress_bar = false")
        self.rows: Counter[str] = Counter()
        self._threads = ThreadPoolExecutor(max_workers=2, thread_name_prefix="history-writer")
        self._in_flight: list[Future[None]] = []

    def _to_lake(self, items: list[tuple[str, str, pa.Table]]) -> None:
        for _, topic, table in items:
            write_partitioned(self.lake_uri, topic, table)  # type: ignore[arg-type]

    def _to_offline(self, items: list[tuple[str, str, pa.Table]]) -> None:
        for name, _, table in items:
            if table.num_rows or not self._store.table_exists(name):  # empty: still create the table
                self._store.append(name, table)

    def write_all(self, items: list[tuple[str, str, pa.Table]]) -> None:
        """Queue ``(offline table, lake folder, rows)`` items; waits for the previous batch first."""
        self.flush()
        if self.lake_uri is not None:
            self._in_flight.append(self._threads.submit(self._to_lake, items))
        if self._store is not None:
            self._in_flight.append(self._threads.submit(self._to_offline, items))
        for name, _, table in items:
            self.rows[name] += table.num_rows

    def write_events(self, tables: Mapping[type[Event], pa.Table],
                     extra: Sequence[tuple[str, str, pa.Table]] = ()) -> None:
        self.write_all([(m.table, m.topic, t) for m, t in tables.items()] + list(extra))

    def flush(self) -> None:
        in_flight, self._in_flight = self._in_flight, []
        for future in in_flight:
            future.result()

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._threads.shutdown(wait=True)
            if self._store is not None:
                self._store.close()
                self._store = None

    def __enter__(self) -> HistoryWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _order_time(event: Event) -> datetime:
    return event.label_time if isinstance(event, FraudLabel) else event.event_time


@cache
def _list_adapter(model: type[Event]) -> TypeAdapter[list[Event]]:
    return TypeAdapter(list[model])  # type: ignore[valid-type]


def validated(model: type[Event], table: pa.Table) -> list[Event]:
    """Rows of ``table`` as contract objects (raises ``ValidationError`` on a bad row).

    One list validation call instead of a call per row: the whole batch stays in pydantic-core.
    """
    return _list_adapter(model).validate_python(to_records(table))


def produce_in_time_order(producer: EventProducer, tables: Mapping[type[Event], pa.Table]) -> Counter[str]:
    """Validate and produce every row, merged across topics in time order; returns counts per topic."""
    events: list[Event] = []
    for model, table in tables.items():
        events.extend(validated(model, table))
    events.sort(key=_order_time)
    counts: Counter[str] = Counter()
    for event in events:
        producer.produce(event)
        counts[event.topic] += 1
    return counts

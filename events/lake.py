"""Write event tables into the lake: ``<lake_uri>/<topic>/dt=YYYY-MM-DD/hour=HH/*.parquet``.

The lake is the history past Kafka's retention and the batch engine's source, so the
simulator and replay write exactly the layout the archiver writes. Partitions come from
``event_time`` (naive UTC). Every call writes new uniquely named files and never touches
existing ones, so concurrent writers and re-runs cannot corrupt a partition.
``lake_uri`` may be a directory or any URI pyarrow understands (``s3://bucket/prefix``).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

US_PER_HOUR = 3_600_000_000
TIMESTAMP = pa.timestamp("us")

PARTITIONING = ds.partitioning(pa.schema([("dt", pa.string()), ("hour", pa.string())]), flavor="hive")


def _filesystem(lake_uri: str) -> tuple[pafs.FileSystem, str]:
    if "://" in lake_uri:
        return pafs.FileSystem.from_uri(lake_uri)
    return pafs.LocalFileSystem(), lake_uri


def _hour_slices(table: pa.Table, time_column: str) -> list[tuple[int, pa.Table]]:
    """(hours since epoch, rows of that hour) - one sort, then zero-copy slices."""
    micros = table[time_column].cast(TIMESTAMP).cast(pa.int64()).to_numpy()
    if len(micros) > 1 and not (micros[1:] >= micros[:-1]).all():
        order = np.argsort(micros, kind="stable")
        table, micros = table.take(pa.array(order)), micros[order]
    hours = micros // US_PER_HOUR
    bounds = np.flatnonzero(np.diff(hours)) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [len(hours)]])
    return [(int(hours[a]), table.slice(a, b - a)) for a, b in zip(starts, ends, strict=True)]


def partition_path(topic: str, hour: int) -> str:
    """``<topic>/dt=YYYY-MM-DD/hour=HH`` for an hour counted since the epoch (UTC)."""
    day = datetime(1970, 1, 1) + timedelta(hours=hour)
    return f"{topic}/dt={day:%Y-%m-%d}/hour={day:%H}"


def write_partitioned(lake_uri: str, topic: str, table: pa.Table, *, time_column: str = "event_time") -> int:
    """Append ``table`` to the topic's dt/hour partitions (new files only); returns rows written."""
    if table.num_rows == 0:
        return 0
    fs, root = _filesystem(lake_uri)
    name = f"part-{uuid.uuid4().hex}.parquet"
    for hour, rows in _hour_slices(table, time_column):
        folder = f"{root.rstrip('/')}/{partition_path(topic, hour)}"
        fs.create_dir(folder, recursive=True)
        pq.write_table(rows, f"{folder}/{name}", filesystem=fs, compression="zstd")
    return table.num_rows


def read_topic(lake_uri: str, topic: str) -> pa.Table:
    """The whole archived history of a topic (tests and small tools; the batch engine uses SQL)."""
    fs, root = _filesystem(lake_uri)
    dataset = ds.dataset(f"{root.rstrip('/')}/{topic}", filesystem=fs, format="parquet", partitioning=PARTITIONING)
    return dataset.to_table()

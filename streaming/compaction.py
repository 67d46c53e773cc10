"""Compact the archive's small Parquet files: many ``part-*.parquet`` of one hour partition -> one file.

The archiver writes a file per source partition per flush, so an hour gathers hundreds of small
files; readers (the backfill, DuckDB scans) pay per file. Compaction must never lose or double
an event, even if it dies half-way, so it follows a manifest protocol:

1. read the inputs, drop repeated ``event_id`` s (keep the first), sort by event time;
2. write the result as ``_compact-<id>.tmp`` (the ``_`` prefix and non-Parquet suffix hide it from
   pyarrow datasets and ``*.parquet`` globs);
3. write ``_compact-<id>.json`` naming the temp file, the final name and the inputs;
4. rename the temp file to ``part-c<id>.parquet``, delete the inputs, delete the manifest.

``recover`` finishes any manifest left by a crash (rename if needed, delete the inputs) and
removes temp files without a manifest, so a crash leaves either the inputs or the result.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from events.lake import _filesystem  # the lake's own URI -> filesystem mapping (local dir or s3://)

log = logging.getLogger(__name__)

MANIFEST_PREFIX = "_compact-"


@dataclass
class CompactionReport:
    partitions: int = 0
    files_in: int = 0
    rows: int = 0
    duplicates_dropped: int = 0
    recovered: int = 0


def _files(fs: pafs.FileSystem, root: str) -> list[pafs.FileInfo]:
    try:
        return [f for f in fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
                if f.type == pafs.FileType.File]
    except FileNotFoundError:
        return []


def _basename(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def _folder(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[0]


def recover(lake_uri: str) -> int:
    """Finish or undo compactions interrupted by a crash; returns how many manifests were completed."""
    fs, root = _filesystem(lake_uri)
    files = _files(fs, root)
    manifests = [f.path for f in files if _basename(f.path).startswith(MANIFEST_PREFIX) and f.path.endswith(".json")]
    claimed: set[str] = set()
    for path in manifests:
        with fs.open_input_stream(path) as stream:
            manifest = json.loads(stream.read())
        folder = _folder(path)
        tmp, final = f"{folder}/{manifest['tmp']}", f"{folder}/{manifest['final']}"
        claimed.add(tmp)
        if fs.get_file_info(tmp).type == pafs.FileType.File:
            fs.move(tmp, final)
        for name in manifest["inputs"]:
            if fs.get_file_info(f"{folder}/{name}").type == pafs.FileType.File:
                fs.delete_file(f"{folder}/{name}")
        fs.delete_file(path)
        log.warning("finished an interrupted compaction", extra={"folder": folder, "result": manifest["final"]})
    for f in files:  # temp files whose manifest was never written: the inputs are still all there
        name = _basename(f.path)
        if name.startswith(MANIFEST_PREFIX) and name.endswith(".tmp") and f.path not in claimed:
            fs.delete_file(f.path)
    return len(manifests)


def compact_folder(fs: pafs.FileSystem, folder: str, inputs: list[str], report: CompactionReport) -> None:
    """Merge ``inputs`` (base names of Parquet files in ``folder``) into one file, by the protocol above."""
    tables = [pq.read_table(f"{folder}/{name}", filesystem=fs) for name in inputs]
    merged = pa.concat_tables(tables, promote_options="default")
    n = merged.num_rows
    if "event_id" in merged.column_names and n:
        merged = merged.append_column("__pos", pa.array(range(n), pa.int64()))
        first = merged.group_by("event_id", use_threads=False).aggregate([("__pos", "min")])
        keep = pc.sort_indices(first["__pos_min"])
        merged = merged.take(pc.take(first["__pos_min"], keep)).drop_columns(["__pos"])
    if "event_time" in merged.column_names and merged.num_rows:
        merged = merged.sort_by([("event_time", "ascending")])
    token = uuid.uuid4().hex[:16]
    tmp, final = f"{MANIFEST_PREFIX}{token}.tmp", f"part-c{token}.parquet"
    pq.write_table(merged, f"{folder}/{tmp}", filesystem=fs, compression="zstd")
    manifest = json.dumps({"tmp": tmp, "final": final, "inputs": inputs,
                           "at": datetime.now(UTC).isoformat()}).encode()
    with fs.open_output_stream(f"{folder}/{MANIFEST_PREFIX}{token}.json.part") as out:
        out.write(manifest)
    fs.move(f"{folder}/{MANIFEST_PREFIX}{token}.json.part", f"{folder}/{MANIFEST_PREFIX}{token}.json")
    fs.move(f"{folder}/{tmp}", f"{folder}/{final}")
    for name in inputs:
        fs.delete_file(f"{folder}/{name}")
    fs.delete_file(f"{folder}/{MANIFEST_PREFIX}{token}.json")
    report.partitions += 1
    report.files_in += len(inputs)
    report.rows += merged.num_rows
    report.duplicates_dropped += n - merged.num_rows


def compact(lake_uri: str, topics: list[str], *, min_files: int, skip_hour: str | None = None) -> CompactionReport:
    """Compact every ``<topic>/dt=/hour=`` folder holding at least ``min_files`` Parquet files.

    ``skip_hour`` (``dt=YYYY-MM-DD/hour=HH``) is left alone: the archiver is still writing it.
    """
    report = CompactionReport(recovered=recover(lake_uri))
    fs, root = _filesystem(lake_uri)
    for topic in topics:
        by_folder: dict[str, list[str]] = {}
        for f in _files(fs, f"{root.rstrip('/')}/{topic}"):
            name = _basename(f.path)
            if name.endswith(".parquet") and not name.startswith(("_", ".")):
                by_folder.setdefault(_folder(f.path), []).append(name)
        for folder, names in sorted(by_folder.items()):
            if skip_hour and folder.endswith(skip_hour):
                continue
            if len(names) >= min_files:
                compact_folder(fs, folder, sorted(names), report)
    if report.partitions:
        log.info("compacted lake partitions", extra={"partitions": report.partitions, "files_in": report.files_in,
                                                     "rows": report.rows})
    return report

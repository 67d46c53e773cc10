"""Compaction of the archive's small files: one file per hour partition, every event exactly once, crash-safe."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from events.lake import read_topic, write_partitioned
from streaming.compaction import MANIFEST_PREFIX, compact, recover

TOPIC = "events.logins"
HOUR = datetime(2026, 1, 1, 5)


def _rows(ids: list[str]) -> pa.Table:
    return pa.table({"event_id": ids, "event_time": pa.array([HOUR + timedelta(seconds=i) for i in range(len(ids))],
                                                             pa.timestamp("us")),
                     "account_id": ["a"] * len(ids)})


def _folder(lake: Path) -> Path:
    return lake / TOPIC / "dt=2026-01-01" / "hour=05"


def _parquet(lake: Path) -> list[str]:
    return sorted(p.name for p in _folder(lake).iterdir() if p.suffix == ".parquet")


def test_small_files_become_one_and_repeats_are_dropped(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    for ids in (["e1", "e2"], ["e3"], ["e3", "e4"], ["e5"]):  # e3 twice: a flush replayed before compaction
        write_partitioned(str(lake), TOPIC, _rows(ids))
    report = compact(str(lake), [TOPIC], min_files=3)
    assert (report.partitions, report.files_in, report.rows, report.duplicates_dropped) == (1, 4, 5, 1)
    assert len(_parquet(lake)) == 1
    assert sorted(read_topic(str(lake), TOPIC)["event_id"].to_pylist()) == ["e1", "e2", "e3", "e4", "e5"]
    assert compact(str(lake), [TOPIC], min_files=3).partitions == 0  # nothing left to do


def test_partitions_below_the_threshold_and_the_open_hour_are_left_alone(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    for ids in (["e1"], ["e2"]):
        write_partitioned(str(lake), TOPIC, _rows(ids))
    assert compact(str(lake), [TOPIC], min_files=3).partitions == 0
    assert compact(str(lake), [TOPIC], min_files=2, skip_hour="dt=2026-01-01/hour=05").partitions == 0
    assert len(_parquet(lake)) == 2


def test_a_crash_after_the_manifest_is_finished_by_recover(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    for ids in (["e1"], ["e2"], ["e3"]):
        write_partitioned(str(lake), TOPIC, _rows(ids))
    inputs = _parquet(lake)
    folder = _folder(lake)
    # what compact_folder leaves when it dies right after writing the manifest
    pq.write_table(_rows(["e1", "e2", "e3"]), folder / f"{MANIFEST_PREFIX}abc.tmp")
    (folder / f"{MANIFEST_PREFIX}abc.json").write_text(json.dumps(
        {"tmp": f"{MANIFEST_PREFIX}abc.tmp", "final": "part-cabc.parquet", "inputs": inputs}))
    assert recover(str(lake)) == 1
    assert _parquet(lake) == ["part-cabc.parquet"]
    assert sorted(read_topic(str(lake), TOPIC)["event_id"].to_pylist()) == ["e1", "e2", "e3"]


def test_a_crash_before_the_manifest_keeps_the_inputs(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    for ids in (["e1"], ["e2"]):
        write_partitioned(str(lake), TOPIC, _rows(ids))
    orphan = _folder(lake) / f"{MANIFEST_PREFIX}zzz.tmp"
    pq.write_table(_rows(["e1", "e2"]), orphan)
    assert recover(str(lake)) == 0
    assert not orphan.exists()
    assert sorted(read_topic(str(lake), TOPIC)["event_id"].to_pylist()) == ["e1", "e2"]

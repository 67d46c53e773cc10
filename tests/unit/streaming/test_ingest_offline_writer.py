"""The ingestion worker's offline writer thread: Redis never waits for a DuckDB append, offsets wait for both."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from riskpipe.settings import Settings
from streaming.ingest import IngestWorker


class _Msg:
    def __init__(self, partition: int, offset: int) -> None:
        self._partition, self._offset = partition, offset

    def topic(self) -> str:
        return "features.g"

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset


class _SlowOfflineSinks:
    """write_offline blocks until released: a DuckDB append under load, or a store that is down."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.offline: list[list[Any]] = []

    def write_offline(self, batches: list[Any]) -> dict[str, int]:
        assert self.release.wait(10), "the test never released the offline write"
        self.offline.append(list(batches))
        return {"offline": len(batches)}


class _Consumer:
    def __init__(self) -> None:
        self.commits: list[dict[tuple[str, int], int]] = []

    def commit(self, offsets: list[Any], asynchronous: bool) -> None:
        assert asynchronous is False
        self.commits.append({(tp.topic, tp.partition): tp.offset for tp in offsets})


def test_offsets_are_committed_only_after_the_offline_append_and_the_loop_does_not_wait_for_it(
        tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, kafka_bootstrap_servers="127.0.0.1:1")
    sinks = _SlowOfflineSinks()
    worker = IngestWorker(settings, sinks=sinks)  # type: ignore[arg-type]
    consumer = _Consumer()
    try:
        worker._unsaved = [_Msg(0, 5), _Msg(0, 6), _Msg(1, 2)]  # already in Redis
        worker._unsaved_batches = ["b1", "b2", "b3"]  # type: ignore[list-item]  # their prepared micro-batches
        worker._save_offline()  # returns while the append is still blocked: the loop goes on writing Redis
        assert sinks.offline == [] and worker._unsaved == []
        worker._commit_saved(consumer, wait=False)
        assert consumer.commits == [], "offsets committed before the offline store had the updates"

        sinks.release.set()
        worker._commit_saved(consumer, wait=True)
        assert sinks.offline == [["b1", "b2", "b3"]]
        assert consumer.commits == [{("features.g", 0): 7, ("features.g", 1): 3}]
        assert worker.status.counters["offline"] == 3 and worker.status.counters["consumed"] == 3
        worker._commit_saved(consumer, wait=True)  # nothing in flight: nothing more to commit
        assert len(consumer.commits) == 1
    finally:
        sinks.release.set()
        worker._offline.shutdown(wait=True)

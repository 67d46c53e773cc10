"""Archive worker: ``events.*`` -> Parquet in the lake, ``<lake>/<topic>/dt=YYYY-MM-DD/hour=HH/``.

The lake keeps history past Kafka's retention and is what the backfill reads, so an archived
event must appear exactly once, even though delivery is at-least-once. The protocol:

* Buffered events are written one file per (source partition, hour) per flush, with names
  fixed *before* writing and recorded, together with the offsets the flush will commit, in a
  small local journal (``<data_dir>/archive/<group id>.journal.json``).
* Offsets are committed after the files are written; then the journal is removed.
* On start-up an existing journal means the previous process died mid-flush: for each source
  partition whose committed offset did not reach the journal's, its files are deleted (those
  events will be consumed and written again); files of committed partitions stay.

Only valid events are archived (the compute worker dead-letters the rest). Small files are
compacted into one per hour partition by ``streaming.compaction`` (the current hour is left
alone while it is still being written).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import threading
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from events.contracts import MODEL_BY_TOPIC, Event
from events.decode import Rejection, decode
from events.lake import _filesystem, _hour_slices, partition_path  # the lake's layout, shared with the simulator
from events.schemas import from_events
from riskpipe.settings import Settings
from riskpipe.topics import EVENT_TOPICS
from streaming.compaction import compact, recover
from streaming.status import WorkerStatus
from streaming.topology import ensure_topics, manual_commit_consumer, physical

log = logging.getLogger(__name__)

WORKER_NAME = "stream-archive"
COMPACT_EVERY_S = 60.0


def journal_path(settings: Settings) -> Path:
    return settings.data_dir / "archive" / f"{settings.archive_group_id}.journal.json"


class ArchiveWorker:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.lake_uri = str(settings.lake_uri)
        self.logical = {physical(settings, t): t for t in EVENT_TOPICS}
        self.status = WorkerStatus(WORKER_NAME)
        self.stop = threading.Event()
        self._last_compaction = 0.0

    def _consumer(self) -> Any:
        return manual_commit_consumer(self.settings, self.settings.archive_group_id)

    # -- crash recovery ---------------------------------------------------------------------------------
    def recover_journal(self, consumer: Any) -> None:
        """Undo the files of a flush whose offsets were not committed (see the module docstring)."""
        from confluent_kafka import TopicPartition

        path = journal_path(self.settings)
        if not path.exists():
            return
        journal = json.loads(path.read_text())
        fs, _ = _filesystem(self.lake_uri)
        tps = [TopicPartition(t, int(p)) for t, p in (k.rsplit("|", 1) for k in journal["offsets"])]
        committed = {(tp.topic, tp.partition): tp.offset for tp in consumer.committed(tps, timeout=30)}
        removed = 0
        for key, end in journal["offsets"].items():
            topic, partition = key.rsplit("|", 1)
            if committed.get((topic, int(partition)), -1) >= end:
                continue
            for file in journal["files"].get(key, []):
                with contextlib.suppress(FileNotFoundError):  # already gone: the undo is idempotent
                    fs.delete_file(file)
                    removed += 1
        log.warning("recovered an interrupted archive flush", extra={"files_removed": removed})
        path.unlink()

    # -- main loop --------------------------------------------------------------------------------------
    def run(self) -> None:
        topics = list(self.logical)
        ensure_topics(self.settings, topics)
        recover(self.lake_uri)
        consumer = self._consumer()
        self.recover_journal(consumer)
        # flush before partitions move to another member, so no buffered event belongs to a lost partition
        consumer.subscribe(topics, on_revoke=lambda c, _partitions: self._flush_buffer(c))
        self.status.state = "running"
        self.status.write(self.settings, force=True)
        self._reset()
        try:
            while not self.stop.is_set():
                for msg in consumer.consume(num_messages=5000, timeout=0.5):
                    if msg.error():
                        log.warning("consumer error", extra={"kafka_error": str(msg.error())})
                        continue
                    self._add(msg)
                due = self._offsets and time.monotonic() - self._started >= self.settings.archive_flush_s
                if self._buffered >= self.settings.archive_batch_rows or due:
                    self._flush_buffer(consumer)
                self._maybe_compact()
                self.status.write(self.settings)
            self._flush_buffer(consumer)
        finally:
            consumer.close()
            self.status.state = "stopped"
            self.status.write(self.settings, force=True)

    def _reset(self) -> None:
        self._buffer: dict[tuple[str, int], list[Event]] = defaultdict(list)
        self._offsets: dict[tuple[str, int], int] = {}
        self._buffered = 0
        self._started = time.monotonic()

    def _add(self, msg: Any) -> None:
        tp = (msg.topic(), msg.partition())
        self._offsets[tp] = msg.offset() + 1
        event = decode(msg.topic().removeprefix(self.settings.topic_prefix), msg.value())
        if isinstance(event, Rejection):
            self.status.counters["invalid_skipped"] += 1
            return
        if not self._buffered:
            self._started = time.monotonic()
        self._buffer[tp].append(event)
        self._buffered += 1

    def _flush_buffer(self, consumer: Any) -> None:
        if self._offsets:
            self.flush(consumer, self._buffer, self._offsets)
        self._reset()

    def flush(self, consumer: Any, buffer: dict[tuple[str, int], list[Event]], offsets: dict[tuple[str, int], int]
              ) -> None:
        """Write one file per (partition, hour), then commit, journaled so a crash can neither lose nor double."""
        from confluent_kafka import TopicPartition

        fs, root = _filesystem(self.lake_uri)
        batch_id = uuid.uuid4().hex[:12]
        plan: dict[str, list[tuple[str, Any]]] = {}
        for (topic, partition), events in buffer.items():
            logical = self.logical[topic]
            table = from_events(events, MODEL_BY_TOPIC[logical])
            files = []
            for hour, rows in _hour_slices(table, "event_time"):
                folder = f"{root.rstrip('/')}/{partition_path(logical, hour)}"
                files.append((f"{folder}/part-p{partition}-{batch_id}.parquet", rows))
            plan[f"{topic}|{partition}"] = files
        journal = {"batch": batch_id, "offsets": {f"{t}|{p}": o for (t, p), o in offsets.items()},
                   "files": {k: [path for path, _ in files] for k, files in plan.items()}}
        path = journal_path(self.settings)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(journal))
        os.replace(tmp, path)
        rows_written = 0
        for files in plan.values():
            for file, rows in files:
                fs.create_dir(_parent(file), recursive=True)
                pq.write_table(rows, file, filesystem=fs, compression="zstd")
                rows_written += rows.num_rows
                self.status.saw_event_time(int(rows["event_time"].cast("int64")[-1].as_py()))
        consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()], asynchronous=False)
        path.unlink()
        self.status.counters["archived"] += rows_written
        self.status.counters["files"] += sum(len(f) for f in plan.values())
        log.info("archived events", extra={"rows": rows_written, "batch": batch_id})

    def _maybe_compact(self) -> None:
        if time.monotonic() - self._last_compaction < COMPACT_EVERY_S:
            return
        self._last_compaction = time.monotonic()
        now = datetime.now(UTC)
        report = compact(self.lake_uri, list(EVENT_TOPICS), min_files=self.settings.archive_compact_min_files,
                         skip_hour=f"dt={now:%Y-%m-%d}/hour={now:%H}")
        self.status.counters["compacted_files"] += report.files_in


def _parent(path: str) -> str:
    return path.rsplit("/", 1)[0]


def run_archive(settings: Settings) -> None:
    """Entry point of the archive process; SIGTERM/SIGINT flush what is buffered, then exit."""
    worker = ArchiveWorker(settings)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: worker.stop.set())
    worker.run()

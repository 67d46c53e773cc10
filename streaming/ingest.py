"""Ingestion worker: ``features.<group>`` -> online store (Redis) + offline store (DuckDB/Snowflake).

The feature topics are the buffer between compute and the stores: compute never writes a
store, so a store outage only delays ingestion, and a replay of the topics rebuilds both.

Exactly-once *effect* from at-least-once delivery:

* Offsets are committed only after both stores accepted the micro-batch (manual commits). Redis is
  written every ``ingest_flush_s`` (freshness), the offline store every ``ingest_offline_flush_s``
  (its per-write cost is high) by a writer thread, so an append never holds up Redis; messages stay
  uncommitted until both have them.
* Online writes are newest-event-time-wins, decided in Redis (a replay rewrites equal values).
* Offline appends go through ``append_features``, which skips (entity, event_time) rows that
  exist. Updates flagged ``correction`` (an out-of-order event changed an emitted point) replace
  the stored row instead: delete + append in one transaction. Within a micro-batch the last
  update per (group, entity, event_time) wins, which is the topic's order for that entity.

DuckDB allows one writing process per file, and Airflow tasks write too, so the offline store
is opened per micro-batch and closed right after; a lock conflict is just another retry.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import groupby
from typing import Any

import pyarrow as pa

from events.dlq import DeadLetterPublisher
from events.producer import EventProducer
from features.definitions.groups import WindowedFeatureGroup
from features.offline.arrow_utils import ARROW_BY_DTYPE, TS
from features.offline.base import OfflineStore
from features.offline_access import open_offline_store
from features.online.redis_store import RedisOnlineStore
from features.store_tx import atomic
from riskpipe.settings import Settings
from streaming.retry import retry_until_done
from streaming.status import WorkerStatus
from streaming.topology import ensure_topics, manual_commit_consumer, stream_groups, update_topic
from streaming.updates import FeatureUpdate, UpdateError, UpdatePack, decode_pack, encode_updates, pack_updates
from streaming.window_state import from_us

log = logging.getLogger(__name__)

WORKER_NAME = "stream-ingest"
DELETE_CHUNK = 200  # (key, time) pairs per DELETE statement: well below any parameter limit
OFFLINE_LOCK_WAIT_S = 5.0  # per attempt; the retry loop waits longer between attempts
# messages in Redis but not yet offline (while the writer is busy) before Redis waits for it: bounds memory in an outage
MAX_UNSAVED_BATCHES = 10
# an offline append every ``ingest_offline_flush_s``, or sooner once this many micro-batches' worth of messages wait:
# a DuckDB append costs ~0.1 s of CPU whatever its size, and at 5k events/s appending every ``ingest_batch_size``
# messages (~4 a second) made it most of the ingestion worker's CPU
OFFLINE_APPEND_BATCHES = MAX_UNSAVED_BATCHES // 2
_ARROW_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError)


@dataclass(frozen=True, slots=True)
class Rejected:
    """Dead-letter reason of a feature update ingestion cannot use (duck-types ``events.decode.Rejection``)."""

    message: str
    field: str | None = None
    reason: str = "bad_feature_update"


@dataclass(frozen=True, slots=True)
class GroupRows:
    """One group's rows of a micro-batch (or of several), as the table both stores get.

    ``keys``, ``times`` and ``upsert`` are the table's join key, event time (us) and "replace the stored
    row" flag per row, kept as Python lists so that merging micro-batches (``merge_rows``) and finding the
    points to upsert never read the table back or convert rows again.
    """

    table: pa.Table
    keys: list[str]
    times: list[int]
    upsert: list[bool]

    def upsert_points(self) -> list[tuple[str, int]]:
        """(entity, event time) points the offline store must replace rather than keep."""
        return [(k, t) for k, t, u in zip(self.keys, self.times, self.upsert, strict=True) if u]


MicroBatch = dict[str, GroupRows]  # group name -> its rows, ready for both stores


def merge_rows(parts: Sequence[GroupRows]) -> GroupRows:
    """``parts`` of one group in topic order as one table with the last row per (entity, event_time).

    A point is upserted when any of its rows was (a correction, or a point a merged part upserts): the row
    that wins may be a replay of the original that the correction replaced. Takes rows only when there are
    duplicates, which is rare within a micro-batch (one compute batch emits one row per point).
    """
    table = pa.concat_tables([p.table for p in parts]) if len(parts) > 1 else parts[0].table
    keys = [k for p in parts for k in p.keys]
    times = [t for p in parts for t in p.times]
    upsert = [u for p in parts for u in p.upsert]
    points = list(zip(keys, times, strict=True))
    last = dict(zip(points, range(len(points)), strict=True))  # first-seen order, index of the last row
    if len(last) == len(points):
        return GroupRows(table, keys, times, upsert)
    flagged = {point for point, u in zip(points, upsert, strict=True) if u}
    index = list(last.values())
    return GroupRows(table.take(index), [keys[i] for i in index], [times[i] for i in index],
                     [point in flagged for point in last])


def merge_batches(batches: Sequence[MicroBatch]) -> MicroBatch:
    """Several micro-batches (in topic order) as one, per group: what one offline append writes."""
    parts: dict[str, list[GroupRows]] = {}
    for batch in batches:
        for name, rows in batch.items():
            parts.setdefault(name, []).append(rows)
    return {name: merge_rows(group_parts) for name, group_parts in parts.items()}


class FeatureSinks:
    """Writes micro-batches of updates to both stores; raises on failure (the caller retries)."""

    def __init__(self, settings: Settings, groups: Sequence[WindowedFeatureGroup],
                 online: RedisOnlineStore, open_offline: Callable[[], OfflineStore] | None = None) -> None:
        self.settings = settings
        self.groups = {g.name: g for g in groups}
        # a group's ``features`` builds its feature models afresh on every call: a fifth of ingestion's CPU when
        # each pack's check and each table asked for them, so the names and the Arrow schema are kept per group
        self._schemas = {g.name: pa.schema([(g.entity.join_key, pa.string()), ("event_time", TS),
                                            *((f.name, ARROW_BY_DTYPE[f.dtype]) for f in g.features)])
                         for g in groups}
        self._names = {name: frozenset(schema.names[2:]) for name, schema in self._schemas.items()}
        self.online = online
        self.open_offline = open_offline or (lambda: open_offline_store(settings, OFFLINE_LOCK_WAIT_S))

    def check(self, pack: UpdatePack) -> str | None:
        """Why ``pack`` cannot be ingested, or None (one pack = one group version and one list of names)."""
        group = self.groups.get(pack.group)
        if group is None:
            return f"group {pack.group!r} is not ingested by this worker"
        if pack.version != group.version:
            return f"group {pack.group!r} version {pack.version} is not the current v{group.version}"
        if pack.join_key != group.entity.join_key:
            return f"join_key {pack.join_key!r} is not {group.entity.join_key!r}"
        unknown = set(pack.names) - self._names[group.name]
        if unknown:
            return f"unknown feature(s) {sorted(unknown)} for group {pack.group!r}"
        return None

    def prepare(self, packs: Sequence[UpdatePack]) -> tuple[MicroBatch, list[tuple[FeatureUpdate, str]]]:
        """Checked packs (topic order) as one table per group, deduped; and the rows whose values do not fit
        the declared dtypes, with the reason. Building the table is the dtype check: rows are converted once
        per micro-batch, and one by one only when a run of packs fails to convert."""
        by_group: dict[str, list[UpdatePack]] = {}
        for pack in packs:
            if pack.keys:
                by_group.setdefault(pack.group, []).append(pack)
        batch: MicroBatch = {}
        unfit: list[tuple[FeatureUpdate, str]] = []
        for name, group_packs in by_group.items():
            parts: list[GroupRows] = []
            # consecutive packs with the same feature names become one table; a new list of names starts another
            # part, so the parts stay in topic order for ``merge_rows``
            for _, run in groupby(group_packs, key=lambda p: p.names):
                fit, bad = self._fitting(list(run))
                parts += fit
                unfit += bad
            if parts:
                batch[name] = merge_rows(parts)
        return batch, unfit

    def _fitting(self, packs: list[UpdatePack]) -> tuple[list[GroupRows], list[tuple[FeatureUpdate, str]]]:
        """``packs`` (one group, one list of names) as a table, leaving out the rows that do not convert."""
        try:
            return [self._rows(packs)], []
        except _ARROW_ERRORS:
            return self._fitting_rows(packs)

    def _fitting_rows(self, packs: list[UpdatePack]) -> tuple[list[GroupRows], list[tuple[FeatureUpdate, str]]]:
        """``_fitting`` row by row, once the packs as a whole did not convert: which rows are unfit, and why."""
        good: list[UpdatePack] = []
        unfit: list[tuple[FeatureUpdate, str]] = []
        for row in (pack.row(i) for pack in packs for i in range(len(pack))):
            try:
                self._rows([row])
                good.append(row)
            except _ARROW_ERRORS as exc:
                unfit.append((row.updates()[0], f"feature values do not fit the declared dtypes: {exc}"))
        return ([self._rows(good)] if good else []), unfit

    def _rows(self, packs: Sequence[UpdatePack]) -> GroupRows:
        """One Arrow conversion per column (``Table.from_pylist`` over a dict per row was 3.6x slower); a feature
        the packs do not carry is a null column of its declared type. Raises ``_ARROW_ERRORS`` on unfit values."""
        schema = self._schemas[packs[0].group]
        position = {n: i for i, n in enumerate(packs[0].names)}  # a name listed twice: its last value, like a dict
        keys = [k for p in packs for k in p.keys]
        times = [t for p in packs for t in p.times]
        columns = list(zip(*(v for p in packs for v in p.values), strict=True))
        features = [pa.array(columns[position[f.name]], f.type) if f.name in position else pa.nulls(len(keys), f.type)
                    for f in list(schema)[2:]]
        table = pa.Table.from_arrays([pa.array(keys, pa.string()), pa.array(times, TS), *features], schema=schema)
        return GroupRows(table, keys, times, [c for p in packs for c in p.corrections])

    def write_online(self, batch: MicroBatch) -> dict[str, int]:
        """Redis, newest-wins, all groups in one pipeline: safe to call again with the same batch."""
        return {"online": self.online.write_batches([(self.groups[name], rows.table) for name, rows in batch.items()])}

    def write_offline(self, batches: Sequence[MicroBatch]) -> dict[str, int]:
        """The offline history of ``batches`` (topic order), all or nothing: safe to call again with the same."""
        counts = {"offline": 0, "upserts": 0}
        store = self.open_offline()
        try:
            with atomic(store):
                for name, rows in merge_batches(batches).items():
                    group = self.groups[name]
                    points = rows.upsert_points()
                    if points and store.table_exists(group.table_name):
                        self._delete_points(store, group, points)
                        counts["upserts"] += len(points)
                    counts["offline"] += store.append_features(group, rows.table)
        finally:
            store.close()
        return counts

    def write(self, updates: Sequence[FeatureUpdate]) -> dict[str, int]:
        """Both stores (tests, tools); safe to call again with the same updates. Raises ``UpdateError`` when a
        value does not fit its dtype, instead of leaving the row out."""
        by_group: dict[tuple[str, int, str], list[FeatureUpdate]] = {}
        for u in updates:
            by_group.setdefault((u.group, u.version, u.join_key), []).append(u)
        batch, unfit = self.prepare([pack_updates(group_updates) for group_updates in by_group.values()])
        if unfit:
            raise UpdateError(unfit[0][1])
        return {**self.write_online(batch), **self.write_offline([batch])}

    @staticmethod
    def _delete_points(store: OfflineStore, group: WindowedFeatureGroup, points: list[tuple[str, int]]) -> None:
        key = group.entity.join_key
        for i in range(0, len(points), DELETE_CHUNK):
            chunk = points[i:i + DELETE_CHUNK]
            where = " OR ".join([f"({key} = ? AND event_time = ?)"] * len(chunk))
            params: list[Any] = []
            for entity_key, t in chunk:
                params += [entity_key, from_us(t)]
            store.execute(f"DELETE FROM {group.table_name} WHERE {where}", params)


class IngestWorker:
    """The consumer loop: micro-batch, write both stores (retrying), then commit."""

    def __init__(self, settings: Settings, sinks: FeatureSinks | None = None) -> None:
        self.settings = settings
        self.groups = stream_groups(settings)
        self.sinks = sinks or FeatureSinks(settings, self.groups, RedisOnlineStore.from_settings(settings))
        self.status = WorkerStatus(WORKER_NAME)
        self.stop = threading.Event()
        self.producer = EventProducer(settings.bootstrap_servers, client_id=f"{settings.ingest_group_id}-dlq")
        self.dlq = DeadLetterPublisher(self.producer)
        # one thread, so offline appends (and their commits) keep the topic's order
        self._offline = ThreadPoolExecutor(1, thread_name_prefix="offline-writer")
        self._writing: tuple[Future[dict[str, int]], list[Any]] | None = None  # an append in flight, its messages

    def _consumer(self) -> Any:
        return manual_commit_consumer(self.settings, self.settings.ingest_group_id)

    def run(self) -> None:
        topics = [update_topic(self.settings, g.name) for g in self.groups]
        ensure_topics(self.settings, topics)
        consumer = self._consumer()
        # write what is buffered before partitions move to another member (it would re-ingest them anyway)
        consumer.subscribe(topics, on_revoke=lambda c, _partitions: self._flush_all(c))
        self.status.state = "running"
        self.status.write(self.settings, force=True)
        log.info("ingestion started", extra={"topics": topics, "group_id": self.settings.ingest_group_id})
        self._buffer: list[Any] = []  # consumed, not yet in Redis
        self._unsaved: list[Any] = []  # in Redis, not yet in the offline store: offsets not committed
        self._unsaved_batches: list[MicroBatch] = []  # their rows, ready for the offline writer
        self._unsaved_since = time.monotonic()
        settings = self.settings
        try:
            while not self.stop.is_set():
                # consume() returns when it has a full batch or at the timeout, never earlier: the timeout is the
                # micro-batch window, i.e. what ingestion adds to freshness at low rates
                timeout = settings.ingest_flush_s
                if self._unsaved and self._writing is None:
                    elapsed = time.monotonic() - self._unsaved_since
                    timeout = min(timeout, max(0.01, settings.ingest_offline_flush_s - elapsed))
                for msg in consumer.consume(num_messages=settings.ingest_batch_size, timeout=timeout):
                    if msg.error():
                        log.warning("consumer error", extra={"kafka_error": str(msg.error())})
                        continue
                    self._buffer.append(msg)
                if self._buffer:
                    self._write_online()
                behind = len(self._unsaved) >= MAX_UNSAVED_BATCHES * settings.ingest_batch_size  # offline store slow
                self._commit_saved(consumer, wait=behind)
                if self._writing is None and self._unsaved and (
                        len(self._unsaved) >= OFFLINE_APPEND_BATCHES * settings.ingest_batch_size
                        or time.monotonic() - self._unsaved_since >= settings.ingest_offline_flush_s):
                    self._save_offline()
                self.status.write(settings)
            self._flush_all(consumer)
        finally:
            self._offline.shutdown(wait=True)
            consumer.close()  # leaves the group at once instead of waiting out the session
            self.producer.flush()
            self.status.state = "stopped"
            self.status.write(self.settings, force=True)

    def _flush_all(self, consumer: Any) -> None:
        """Everything consumed into both stores and committed (before a rebalance moves partitions, and at exit)."""
        if self._buffer:
            self._write_online()
        self._commit_saved(consumer, wait=True)
        if self._unsaved:
            self._save_offline()
            self._commit_saved(consumer, wait=True)

    def _write_online(self) -> None:
        """Decode the buffer, dead-letter what cannot be used, write Redis (retrying): freshness is decided here.

        The offline store is written less often (``ingest_offline_flush_s``): opening DuckDB and appending
        cost ~0.1-0.3 s per micro-batch whatever its size, too slow for a sub-second path to Redis.
        """
        messages, self._buffer = self._buffer, []
        packs: list[UpdatePack] = []
        for msg in messages:
            try:
                pack = decode_pack(msg.value())
                problem = self.sinks.check(pack) if pack.keys else None
            except UpdateError as exc:
                problem = str(exc)
            if problem is not None:
                self.dlq.publish(msg.topic(), msg.value(), Rejected(problem),  # type: ignore[arg-type]
                                 key=msg.key(), partition=msg.partition(), offset=msg.offset())
                self.status.counters["rejected"] += 1
                continue
            packs.append(pack)
        batch, unfit = self.sinks.prepare(packs)
        for update, reason in unfit:  # dead-lettered as a pack of one, so it can be inspected and replayed
            self.dlq.publish(update_topic(self.settings, update.group), encode_updates([update]),
                             Rejected(reason), key=update.entity_key.encode())  # type: ignore[arg-type]
            self.status.counters["rejected"] += 1
        if batch:
            counts = retry_until_done(lambda: self.sinks.write_online(batch), "online store write",
                                      settings=self.settings, status=self.status)
            self.status.counters.update(counts)
            self.status.saw_event_time(max(max(rows.times) for rows in batch.values()))
            self._unsaved_batches.append(batch)
        if not self._unsaved:
            self._unsaved_since = time.monotonic()
        self._unsaved += messages

    def _save_offline(self) -> None:
        """Hand everything already in Redis to the writer thread: a DuckDB append takes 0.1-1 s under load, and
        done in this loop it held up the next Redis writes (most of ingestion's share of freshness at 5k ev/s).
        The writer gets the tables Redis got (no second conversion of the rows)."""
        messages, batches = self._unsaved, self._unsaved_batches
        self._unsaved, self._unsaved_batches = [], []
        future = self._offline.submit(retry_until_done, lambda: self.sinks.write_offline(batches) if batches else {},
                                      "offline store write", settings=self.settings, status=self.status)
        self._writing = (future, messages)

    def _commit_saved(self, consumer: Any, *, wait: bool) -> None:
        """Once the writer has the messages of its append in the offline store, commit their offsets."""
        from confluent_kafka import KafkaException, TopicPartition

        if self._writing is None or not (wait or self._writing[0].done()):
            return
        future, messages = self._writing
        self._writing = None
        self.status.counters.update(future.result())  # the writer retries store failures; anything else is a bug
        self.producer.flush()  # dead letters are durable before their offsets are committed
        offsets: dict[tuple[str, int], int] = {}
        for msg in messages:
            tp = (msg.topic(), msg.partition())
            offsets[tp] = max(offsets.get(tp, -1), msg.offset() + 1)
        try:
            consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()], asynchronous=False)
        except KafkaException as exc:  # partitions moved during a long retry: the new owner re-ingests (idempotent)
            log.warning("commit failed", extra={"kafka_error": str(exc)})
        self.status.counters["consumed"] += len(messages)
        self.status.counters["batches"] += 1


def run_ingest(settings: Settings) -> None:
    """Entry point of the ingestion process; SIGTERM/SIGINT finish the current micro-batch, then exit."""
    worker = IngestWorker(settings)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: worker.stop.set())
    worker.run()

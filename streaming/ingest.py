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
from streaming.updates import FeatureUpdate, UpdateError, decode_updates, encode_updates
from streaming.window_state import from_us

log = logging.getLogger(__name__)

WORKER_NAME = "stream-ingest"
DELETE_CHUNK = 200  # (key, time) pairs per DELETE statement: well below any parameter limit
OFFLINE_LOCK_WAIT_S = 5.0  # per attempt; the retry loop waits longer between attempts
# messages in Redis but not yet offline (while the writer is busy) before Redis waits for it: bounds memory in an outage
MAX_UNSAVED_BATCHES = 10
_ARROW_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError)


@dataclass(frozen=True, slots=True)
class Rejected:
    """Dead-letter reason of a feature update ingestion cannot use (duck-types ``events.decode.Rejection``)."""

    message: str
    field: str | None = None
    reason: str = "bad_feature_update"


class FeatureSinks:
    """Writes micro-batches of updates to both stores; raises on failure (the caller retries)."""

    def __init__(self, settings: Settings, groups: Sequence[WindowedFeatureGroup],
                 online: RedisOnlineStore, open_offline: Callable[[], OfflineStore] | None = None) -> None:
        self.settings = settings
        self.groups = {g.name: g for g in groups}
        # a group's ``features`` builds its feature models afresh on every call: a fifth of ingestion's CPU when
        # each pack's check and each table asked for them, so the names and the Arrow schema are kept per group
        self._schemas = {g.name: pa.schema([(f.name, ARROW_BY_DTYPE[f.dtype]) for f in g.features]) for g in groups}
        self._names = {name: frozenset(schema.names) for name, schema in self._schemas.items()}
        self.online = online
        self.open_offline = open_offline or (lambda: open_offline_store(settings, OFFLINE_LOCK_WAIT_S))

    def check(self, update: FeatureUpdate) -> str | None:
        """Why ``update`` cannot be ingested, or None."""
        group = self.groups.get(update.group)
        if group is None:
            return f"group {update.group!r} is not ingested by this worker"
        if update.version != group.version:
            return f"group {update.group!r} version {update.version} is not the current v{group.version}"
        if update.join_key != group.entity.join_key:
            return f"join_key {update.join_key!r} is not {group.entity.join_key!r}"
        unknown = set(update.features) - self._names[group.name]
        if unknown:
            return f"unknown feature(s) {sorted(unknown)} for group {update.group!r}"
        return None

    def split_unfit(self, updates: Sequence[FeatureUpdate]
                    ) -> tuple[list[FeatureUpdate], list[tuple[FeatureUpdate, str]]]:
        """Updates whose values fit the declared dtypes, and the rest with the reason (checked per group, then
        per update only when a group's batch fails, so the common case costs one conversion)."""
        by_group: dict[str, list[FeatureUpdate]] = {}
        for u in updates:
            by_group.setdefault(u.group, []).append(u)
        bad: list[tuple[FeatureUpdate, str]] = []
        for name, rows in by_group.items():
            try:
                self.table(self.groups[name], rows)
                continue
            except _ARROW_ERRORS:
                pass
            for u in rows:
                try:
                    self.table(self.groups[name], [u])
                except _ARROW_ERRORS as exc:
                    bad.append((u, f"feature values do not fit the declared dtypes: {exc}"))
        rejected = {id(u) for u, _ in bad}
        return [u for u in updates if id(u) not in rejected], bad

    def table(self, group: WindowedFeatureGroup, updates: Sequence[FeatureUpdate]) -> pa.Table:
        # the feature columns from the rows' dicts in one Arrow call (a list per feature built in Python was a
        # quarter of the ingestion worker's CPU); a feature a row does not carry is null, like ``dict.get``
        schema = self._schemas[group.name]
        features = pa.Table.from_pylist([u.features for u in updates], schema=schema)
        return pa.table({
            group.entity.join_key: pa.array([u.entity_key for u in updates], pa.string()),
            "event_time": pa.array([u.event_time_us for u in updates], TS),
            **{name: features.column(name) for name in schema.names},
        })

    def _tables(self, updates: Sequence[FeatureUpdate]) -> tuple[dict[str, pa.Table], set[tuple[str, str, int]]]:
        """Per group, the last update per (entity, event_time) (the topic's order for that entity) as a table,
        and the points that corrections must replace."""
        latest: dict[tuple[str, str, int], FeatureUpdate] = {}
        upsert: set[tuple[str, str, int]] = set()
        for u in updates:
            point = (u.group, u.entity_key, u.event_time_us)
            latest[point] = u
            if u.correction:
                upsert.add(point)
        by_group: dict[str, list[FeatureUpdate]] = {}
        for u in latest.values():
            by_group.setdefault(u.group, []).append(u)
        return {name: self.table(self.groups[name], rows) for name, rows in by_group.items()}, upsert

    def write_online(self, updates: Sequence[FeatureUpdate]) -> dict[str, int]:
        """Redis, newest-wins: safe to call again with the same batch."""
        tables, _ = self._tables(updates)
        return {"online": sum(self.online.write_batch(self.groups[name], t) for name, t in tables.items())}

    def write_offline(self, updates: Sequence[FeatureUpdate]) -> dict[str, int]:
        """The offline history, all or nothing: safe to call again with the same batch."""
        tables, upsert = self._tables(updates)
        counts = {"offline": 0, "upserts": 0}
        store = self.open_offline()
        try:
            with atomic(store):
                for name, table in tables.items():
                    group = self.groups[name]
                    points = [(k, t) for (g, k, t) in upsert if g == name]
                    if points and store.table_exists(group.table_name):
                        self._delete_points(store, group, points)
                        counts["upserts"] += len(points)
                    counts["offline"] += store.append_features(group, table)
        finally:
            store.close()
        return counts

    def write(self, updates: Sequence[FeatureUpdate]) -> dict[str, int]:
        """Both stores; safe to call again with the same batch."""
        return {**self.write_online(updates), **self.write_offline(updates)}

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
        self._unsaved_updates: list[FeatureUpdate] = []
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
                        len(self._unsaved) >= settings.ingest_batch_size
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
        updates: list[FeatureUpdate] = []
        for msg in messages:
            try:
                pack = decode_updates(msg.value())
                # one pack = one group version and one list of feature names: its first row speaks for all
                problem = self.sinks.check(pack[0]) if pack else None
            except UpdateError as exc:
                pack, problem = [], str(exc)
            if problem is not None:
                self.dlq.publish(msg.topic(), msg.value(), Rejected(problem),  # type: ignore[arg-type]
                                 key=msg.key(), partition=msg.partition(), offset=msg.offset())
                self.status.counters["rejected"] += 1
                continue
            updates += pack
        updates, unfit = self.sinks.split_unfit(updates)
        for update, reason in unfit:  # dead-lettered as a pack of one, so it can be inspected and replayed
            self.dlq.publish(update_topic(self.settings, update.group), encode_updates([update]),
                             Rejected(reason), key=update.entity_key.encode())  # type: ignore[arg-type]
            self.status.counters["rejected"] += 1
        if updates:
            counts = retry_until_done(lambda: self.sinks.write_online(updates), "online store write",
                                      settings=self.settings, status=self.status)
            self.status.counters.update(counts)
            for u in updates:
                self.status.saw_event_time(u.event_time_us)
        if not self._unsaved:
            self._unsaved_since = time.monotonic()
        self._unsaved += messages
        self._unsaved_updates += updates

    def _save_offline(self) -> None:
        """Hand everything already in Redis to the writer thread: a DuckDB append takes 0.1-1 s under load, and
        done in this loop it held up the next Redis writes (most of ingestion's share of freshness at 5k ev/s)."""
        messages, updates = self._unsaved, self._unsaved_updates
        self._unsaved, self._unsaved_updates = [], []
        future = self._offline.submit(retry_until_done, lambda: self.sinks.write_offline(updates) if updates else {},
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

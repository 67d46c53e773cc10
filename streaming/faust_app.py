"""The Faust worker of the stream features: two stages and two changelog-backed tables, nothing more.

All logic lives in ``streaming.compute`` (tested without Faust); this module only wires it:

* task ``account-features`` reads ``events.*`` in batches through ``streaming.event_source`` (librdkafka,
  time-aligned across partitions, the partitions Faust assigned to this worker's account-state table),
  table ``account-state``;
* agent ``entity-features`` reads the re-key topic ``<app id>-rekey`` (``take_events``), table ``entity-state``.

Choices forced by the broker and by correctness (see /work/shared/ENVIRONMENT.md):

* ``at_least_once`` (Tansu has no transactions); sinks are idempotent instead.
* Changelog *markers*: Tansu's ListOffsets(LATEST) answers the last produce batch's base offset
  + 1, so Faust's recovery stops short of the newest changelog records of a multi-record batch.
  The proven workaround, ``producer_max_batch_size=1``, sends every record alone and capped the
  worker at ~300 events/s. Instead, after each checkpoint's table writes are flushed, one tiny marker
  record goes to every changelog partition the checkpoint touched: the marker *starts* a new produce
  batch, so the reported end offset always lies past every record of every checkpoint that could have
  been committed (offsets are committed after the markers are acknowledged). Records after the
  last marker belong to an uncommitted checkpoint, whose events are re-processed after a restart anyway.
* Checkpoints (``streaming.checkpoints``): each batch writes the states first changed ``stream_checkpoint_s``
  ago, so the work is spread over the batches instead of stalling the stage once a second, and the input
  of a batch is released only once every state it changed is in the changelog (checked every
  ``stream_checkpoint_s``, and at once when idle); feature updates leave as they are computed. Stage 1
  commits its own offsets; stage 2 holds an extra reference on each re-key record that Faust delivered
  and releases it then, so Faust commits no offset whose states are not in the changelog. A rebalance
  drops what was not released: Faust seeks every partition back to its committed offset, so it is read again.
* Changelog records go to the partition of their key's murmur2 hash (what ``use_partitioner=True``
  tells Faust to recover them with): a batch spans partitions, so the partition of the *current*
  event (Faust's default) would file an entity's record under the wrong one.
* Feature updates, re-keyed events, dead letters and the tables' changelog records go through one
  confluent-kafka producer (several times faster than Faust's), flushed before offsets are committed
  (stage 1) or Faust acks the records (stage 2).
* Any unexpected error ends the process at once (exit code 1) instead of letting the failed batch be
  committed: a restart resumes from the last committed offsets and loses nothing.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import faust

from events.producer import EventProducer
from riskpipe.settings import Settings
from streaming.checkpoints import Checkpoints
from streaming.compute import Consumed, StreamCompute, flush_outputs, tune_gc
from streaming.event_source import EventSource, commit_offsets
from streaming.state_table import CHANGELOG_MARKER, routing_key
from streaming.status import WorkerStatus
from streaming.topology import (
    ensure_topics,
    event_topics,
    group_names,
    key_partition,
    plans,
    rekey_topic,
    update_topic,
)
from streaming.window_state import GroupPlan

log = logging.getLogger(__name__)

WORKER_NAME = "stream-compute"


def faust_broker_url(bootstrap_servers: str) -> str:
    return ";".join(f"kafka://{h.strip()}" for h in bootstrap_servers.split(",") if h.strip())


def _adapt(event: Any) -> Consumed:
    msg = event.message
    headers = msg.headers or ()
    if isinstance(headers, Mapping):
        headers = headers.items()
    return Consumed(msg.topic, msg.partition, msg.offset, msg.key, msg.value,
                    tuple((k, v) for k, v in headers))


def limit_fetch_wait(max_wait_ms: int) -> None:
    """Make Faust's consumers ask for at most ``max_wait_ms`` per fetch (process-wide).

    Faust hard-codes aiokafka's ``fetch_max_wait_ms=1500`` and Tansu answers a fetch only when that
    wait is over, even when records arrive earlier, so each Faust hop (events, re-key topic) added up
    to 1.5 s of latency. There is no setting for it: the consumer Faust builds is adjusted before it
    starts (aiokafka reads the attribute when it creates its fetcher).
    """
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    create = getattr(AIOKafkaConsumerThread._create_worker_consumer, "__wrapped__",
                     AIOKafkaConsumerThread._create_worker_consumer)

    @functools.wraps(create)
    def create_worker_consumer(self: Any, transport: Any) -> Any:
        consumer = create(self, transport)
        consumer._fetch_max_wait_ms = max_wait_ms
        return consumer

    AIOKafkaConsumerThread._create_worker_consumer = create_worker_consumer  # type: ignore[method-assign]


class ChangelogTable:
    """A Faust table written through the worker's confluent-kafka producer (the ``KeyValueTable`` of the states).

    ``table[key] = value`` on a Faust table sends the changelog record through aiokafka, one Python-level
    produce per touched entity and batch: about a tenth of the worker's CPU. The value goes into the table's
    store directly and the changelog record through librdkafka instead, to the same changelog topic and
    (murmur2) partition, so Faust's own recovery restores it like any record it had sent itself.
    """

    def __init__(self, table: faust.Table, producer: EventProducer, partitions: int) -> None:
        self.table = table
        self.producer = producer
        self.partitions = partitions
        self.topic = table.changelog_topic.get_topic_name()

    def get(self, key: bytes, default: Any = None) -> Any:
        return self.table.data.get(key, default)

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.table.data[key] = value
        self.producer.produce_raw(self.topic, value, key=key, partition=self._partition(key))

    def __delitem__(self, key: bytes) -> None:
        del self.table.data[key]
        self.producer.produce_raw(self.topic, None, key=key, partition=self._partition(key))

    def _partition(self, key: bytes) -> int:
        """The entity's partition, also for the chunks of a large value (their keys only start with the entity's)."""
        return key_partition(routing_key(key), self.partitions)

    def mark(self, keys: set[bytes]) -> None:
        """One marker per changelog partition of ``keys`` (see the module docstring); call after a flush."""
        for partition in sorted({self._partition(key) for key in keys}):
            self.producer.produce_raw(self.topic, b"m", key=CHANGELOG_MARKER, partition=partition)


def build_app(settings: Settings, group_plans: Sequence[GroupPlan] | None = None,
              status: WorkerStatus | None = None) -> faust.App:
    """The Faust app for ``settings`` (app id, topics, batch sizes and lateness all come from there)."""
    group_plans = list(group_plans if group_plans is not None else plans(settings))
    status = status or WorkerStatus(WORKER_NAME)
    limit_fetch_wait(settings.stream_fetch_wait_ms)
    session_s = settings.kafka_session_timeout_ms / 1000
    # Faust's default datadir is "<app id>-data" in the cwd: keep its files under the data dir instead
    datadir = settings.data_dir / "faust" / settings.stream_app_id
    datadir.mkdir(parents=True, exist_ok=True)  # Faust creates the last level only
    app = faust.App(
        settings.stream_app_id,
        broker=faust_broker_url(settings.bootstrap_servers),
        store="memory://",
        datadir=str(datadir),
        processing_guarantee="at_least_once",
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=1,
        table_standby_replicas=0,
        web_enabled=False,
        broker_session_timeout=session_s,
        broker_heartbeat_interval=session_s / 4,
        broker_commit_interval=1.0,
        consumer_auto_offset_reset="earliest",
        stream_buffer_maxsize=max(4096, settings.stream_batch_size * 2),
        # stage 2 holds re-key records un-acked until its checkpoint; a rebalance must not wait for them (they are
        # dropped and read again from the committed offsets), so Faust does not wait for its streams to empty
        stream_wait_empty=False,
    )
    raw = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}
    rekey = app.topic(rekey_topic(settings), partitions=settings.topic_partitions, internal=True, **raw)
    # bytes keys and values: Faust's "raw" codec, so changelog keys equal the source keys (same partition)
    table_opts = {"key_type": bytes, "value_type": bytes, "use_partitioner": True,
                  "partitions": settings.topic_partitions}
    account_table = app.Table("account-state", **table_opts)
    entity_table = app.Table("entity-state", **table_opts)
    # success reports would cost a Python callback per message; failures are still reported and raised by flush
    producer = EventProducer(settings.bootstrap_servers, client_id=f"{settings.stream_app_id}-outputs",
                             config={"delivery.report.only.error": True})
    accounts = ChangelogTable(account_table, producer, settings.topic_partitions)
    entities = ChangelogTable(entity_table, producer, settings.topic_partitions)
    compute = StreamCompute(settings, group_plans, producer, status, accounts, entities)
    events = EventSource(settings, event_topics(settings))

    def crash(what: str) -> None:
        log.exception("%s failed; exiting so a restart resumes from the committed offsets", what)
        status.state = "stopped"
        status.detail = f"crashed in {what}: see the log"
        status.write(settings, force=True)
        logging.shutdown()
        os._exit(1)

    def run_batch(process: Callable[[list[Any]], None], records: list[Any], checkpoints: Checkpoints[Any],
                  table: ChangelogTable, *, idle: bool) -> list[Any]:
        """Compute ``records`` and write the states that are due; when a release is due, return the inputs of the
        batches that are fully written, once every output, changelog record and marker before them is
        acknowledged. Any error exits before anything is released."""
        try:
            if records:
                process(records)
            checkpoints.flush_due(everything=idle)
            releasable: list[Any] = []
            if checkpoints.release_due(idle=idle):
                flush_outputs(producer)
                if checkpoints.written:  # after the flush, so each marker starts a produce batch of its own
                    table.mark(checkpoints.written)
                    flush_outputs(producer)
                checkpoints.released()
                releasable = checkpoints.releasable()
            else:
                producer.poll(0)  # serve delivery reports; the outputs leave now, the release waits for them
        except Exception:
            crash("batch")
        status.state = "running"
        status.counters["batches"] += 1
        status.write(settings)
        return releasable

    # Each stage releases the input behind its states only once they are in the changelog: stage 1 commits offsets,
    # stage 2 holds one extra reference on each re-key record (so the ack ``take_events`` gives it does not let Faust
    # commit its offset) and acks it then.
    stage1: Checkpoints[dict[tuple[str, int], int]] = Checkpoints(compute.accounts, settings.stream_checkpoint_s)
    stage2: Checkpoints[list[Any]] = Checkpoints(compute.entities, settings.stream_checkpoint_s)
    stage2_stream: dict[str, Any] = {"stream": None}

    async def release_rekeyed(inputs: list[list[Any]]) -> None:
        stream = stage2_stream["stream"]
        for packs in inputs:
            for event in packs:
                await stream.ack(event)  # the last reference: the offset may be committed

    @app.on_partitions_revoked.connect
    async def stop_events(sender: Any, revoked: Any, **_: Any) -> None:
        events.want(None)  # nothing is processed until the rebalance and the table recovery are over
        # stage 2: what was not checkpointed is re-read (Faust seeks every partition to its committed offset)
        stage2.discard()

    @app.on_rebalance_complete.connect
    async def follow_tables(sender: Any, **_: Any) -> None:
        changelog = accounts.topic
        events.want(tp.partition for tp in app.tables.recovery.active_tps if tp.topic == changelog)

    @app.task
    async def account_features() -> None:
        """Stage 1: a batch of events at a time, from the partitions whose account states this worker holds."""
        loop = asyncio.get_running_loop()
        busy = False  # the last round released a full batch: more is probably there, so do not wait for it
        generation = events.generation
        while not app.should_stop:
            if generation != events.generation:  # a rebalance: the next owner re-reads what was not checkpointed
                stage1.discard()
                generation = events.generation
            if not events.sync():
                await asyncio.sleep(0.05)
                continue
            wait_s = 0.0 if busy else settings.stream_batch_window_s
            await loop.run_in_executor(None, events.poll, settings.stream_batch_size, wait_s)
            if generation != events.generation:
                continue  # a rebalance began meanwhile: what was read is re-read by the partitions' next owner
            batch = events.take(settings.stream_batch_size, time.monotonic())
            busy = len(batch) >= settings.stream_batch_size
            if batch:
                stage1.begin(commit_offsets(batch))
            elif not len(stage1):
                continue
            done = run_batch(compute.process_events, batch, stage1, accounts, idle=not batch)
            if done:
                offsets: dict[tuple[str, int], int] = {}
                for batch_offsets in done:  # later batches' offsets win
                    offsets.update(batch_offsets)
                try:
                    events.commit(offsets)
                except Exception:
                    crash("offset commit")

    @app.agent(rekey, name="entity-features")
    async def entity_features(stream: faust.Stream) -> None:
        """Stage 2: re-key packs (up to 500 rows a record, so Faust's per-record cost does not matter here)."""
        stage2_stream["stream"] = stream
        async for packs in stream.take_events(settings.stream_batch_size, within=settings.stream_batch_window_s):
            for event in packs:
                event.message.incref()  # released once the states these packs changed are in the changelog
            stage2.begin(packs)
            await release_rekeyed(run_batch(compute.process_rekeyed, [_adapt(e) for e in packs], stage2, entities,
                                            idle=False))

    @app.timer(settings.stream_checkpoint_s)
    async def checkpoint_idle_entities() -> None:
        """Write and release the rest of stage 2 when its traffic stopped (the agent runs only when packs arrive)."""
        if stage2.idle():
            await release_rekeyed(run_batch(compute.process_rekeyed, [], stage2, entities, idle=True))

    @app.timer(settings.worker_status_interval_s)
    async def report_status() -> None:
        if status.state == "starting":
            status.state = "running"  # assignment done and no events yet: idle, not stuck
        status.write(settings, force=True)

    app.compute = compute  # type: ignore[attr-defined]  # for tests and the benchmark
    return app


def run_worker(settings: Settings) -> None:
    """Run the Faust worker in this process until SIGTERM/SIGINT."""
    from faust.worker import Worker

    group_plans = plans(settings)
    ensure_topics(settings, [*event_topics(settings), *(update_topic(settings, g) for g in group_names(group_plans))])
    status = WorkerStatus(WORKER_NAME)
    status.write(settings, force=True)
    app = build_app(settings, group_plans, status)
    tune_gc()
    worker = Worker(app, loglevel="INFO", quiet=True, redirect_stdouts=False)
    try:
        worker.execute_from_commandline()
    finally:
        status.state = "stopped"
        status.write(settings, force=True)

"""The Faust worker of the stream features: two agents and two changelog-backed tables, nothing more.

All logic lives in ``streaming.compute`` (tested without Faust); this module only wires it:

* agent ``account-features`` reads ``events.*`` in batches (``take_events``), table ``account-state``;
* agent ``entity-features`` reads the re-key topic ``<app id>-rekey``, table ``entity-state``.

Choices forced by the broker and by correctness (see /work/shared/ENVIRONMENT.md):

* ``at_least_once`` (Tansu has no transactions); sinks are idempotent instead.
* Changelog *markers*: Tansu's ListOffsets(LATEST) answers the last produce batch's base offset
  + 1, so Faust's recovery stops short of the newest changelog records of a multi-record batch.
  The proven workaround, ``producer_max_batch_size=1``, sends every record alone and capped the
  worker at ~300 events/s. Instead, after each batch's table writes the agent flushes Faust's
  producer and writes one tiny marker record to every changelog partition it touched: the
  marker *starts* a new produce batch, so the reported end offset always lies past every
  record of every batch that could have been committed (offsets are committed after the
  markers: Faust flushes its producer before each commit). Records after the last marker
  belong to an uncommitted batch, which is re-processed after a restart anyway.
* Tables use ``use_partitioner=True``: a batch spans partitions, so Faust's default (the
  partition of the *current* event) would file an entity's changelog record under the wrong
  partition; the key's own murmur2 partition is the one that is recovered with it.
* Feature updates, re-keyed events and dead letters go through one confluent-kafka producer
  (several times faster than Faust's), flushed at the end of every batch, before Faust acks the
  batch; Faust flushes its own producer (changelogs) before every commit.
* Any unexpected error ends the process at once (exit code 1) instead of letting Faust ack
  the failed batch: a restart resumes from the last committed offsets and loses nothing.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import faust

from events.producer import EventProducer
from riskpipe.settings import Settings
from streaming.compute import Consumed, StreamCompute, flush_outputs
from streaming.state_table import CHANGELOG_MARKER, StateTable
from streaming.status import WorkerStatus
from streaming.topology import ensure_topics, event_topics, key_partition, plans, rekey_topic, update_topic
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
        # a batch writes one changelog record per touched entity in one burst: without linger aiokafka sends
        # them in many tiny requests (a socket write each); the markers still start their own batch (flush first)
        producer_linger=0.005,
        producer_max_batch_size=1 << 18,
    )
    raw = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}
    source = app.topic(*event_topics(settings), **raw)
    rekey = app.topic(rekey_topic(settings), partitions=settings.topic_partitions, internal=True, **raw)
    # bytes keys and values: Faust's "raw" codec, so changelog keys equal the source keys (same partition)
    table_opts = {"key_type": bytes, "value_type": bytes, "use_partitioner": True,
                  "partitions": settings.topic_partitions}
    account_table = app.Table("account-state", **table_opts)
    entity_table = app.Table("entity-state", **table_opts)
    # success reports would cost a Python callback per message; failures are still reported and raised by flush
    producer = EventProducer(settings.bootstrap_servers, client_id=f"{settings.stream_app_id}-outputs",
                             config={"delivery.report.only.error": True})
    compute = StreamCompute(settings, group_plans, producer, status, account_table, entity_table)

    def crash(what: str) -> None:
        log.exception("%s failed; exiting so a restart resumes from the committed offsets", what)
        status.state = "stopped"
        status.detail = f"crashed in {what}: see the log"
        status.write(settings, force=True)
        logging.shutdown()
        os._exit(1)

    async def run_batch(process: Callable[[list[Consumed]], None], events: Sequence[Any],
                        table: faust.Table, states: StateTable) -> None:
        """Compute, flush outputs, then changelog markers; any error exits before Faust acks the batch."""
        try:
            process([_adapt(e) for e in events])
            flush_outputs(producer)
        except Exception:
            crash("batch")
        try:
            touched, states.touched = states.touched, set()
            if touched:
                await app.producer.flush()  # the batch's changelog records are out: markers start new batches
                for partition in sorted({key_partition(key, settings.topic_partitions) for key in touched}):
                    table.send_changelog(partition, CHANGELOG_MARKER, b"m")
        except Exception:
            crash("changelog markers")
        status.state = "running"
        status.counters["batches"] += 1
        status.write(settings)

    @app.agent(source, name="account-features")
    async def account_features(stream: faust.Stream) -> None:
        async for events in stream.take_events(settings.stream_batch_size, within=settings.stream_batch_window_s):
            await run_batch(compute.process_events, events, account_table, compute.accounts)

    @app.agent(rekey, name="entity-features")
    async def entity_features(stream: faust.Stream) -> None:
        async for events in stream.take_events(settings.stream_batch_size, within=settings.stream_batch_window_s):
            await run_batch(compute.process_rekeyed, events, entity_table, compute.entities)

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
    ensure_topics(settings, [*event_topics(settings), *(update_topic(settings, p.name) for p in group_plans)])
    status = WorkerStatus(WORKER_NAME)
    status.write(settings, force=True)
    app = build_app(settings, group_plans, status)
    worker = Worker(app, loglevel="INFO", quiet=True, redirect_stdouts=False)
    try:
        worker.execute_from_commandline()
    finally:
        status.state = "stopped"
        status.write(settings, force=True)

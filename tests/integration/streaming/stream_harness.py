"""Helpers of the streaming integration tests: a simulated day, worker subprocesses, the truth to compare with.

Workers run as real processes (`python -m riskpipe stream ...`) against the session broker and
Redis, with per-test topic prefix, Faust app id, consumer groups and Redis key prefix, and the
test's own DuckDB file. The truth for every emitted point is the naive oracle over the raw
events; the batch engine must agree with it too.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from events.contracts import FraudLabel
from events.producer import EventProducer
from events.simulator.config import SimulationConfig
from events.simulator.engine import Simulator
from events.simulator.history import history_batches
from events.sinks import HistoryWriter, produce_in_time_order, validated
from features.definitions.groups import WindowedFeatureGroup
from features.offline_access import offline_session
from features.online.redis_store import RedisOnlineStore
from features.oracle import mismatches, oracle_at_points
from riskpipe.settings import Settings
from streaming.status import read_status
from streaming.topology import ensure_topics, event_topics, stream_groups


@dataclass
class Workers:
    settings: Settings
    log_dir: Path
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RISKPIPE_")}
        return {**env, **self.settings.to_env()}

    def start(self, name: str, instance: str | None = None) -> subprocess.Popen:
        """Start worker ``name`` (compute, ingest, archive); ``instance`` names a second one of the same kind."""
        instance = instance or name
        log = (self.log_dir / f"{instance}.log").open("ab")
        proc = subprocess.Popen([sys.executable, "-m", "riskpipe", "stream", name], env=self.env(),
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs[instance] = proc
        return proc

    def kill9(self, name: str) -> None:
        proc = self.procs.pop(name)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def stop_all(self) -> None:
        for name in list(self.procs):  # one at a time (Tansu can wedge a group whose members leave together)
            self.stop(name)

    def log(self, name: str) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def alive(self, name: str) -> bool:
        return name in self.procs and self.procs[name].poll() is None


@dataclass
class SimulatedDay:
    """Raw events of a simulated day: in the offline store (for the batch engine) and as frames (oracle)."""

    frames: dict[str, pd.DataFrame]
    tables: dict[Any, Any]
    events: int


def simulate_day(settings: Settings, accounts: int, seed: int) -> SimulatedDay:
    """One day ending a few minutes ago (so online values are inside their TTL), raw tables written offline."""
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(days=1, minutes=10)
    sim = Simulator(SimulationConfig(seed=seed, accounts=accounts, days=1.0, start=start))
    tables: dict[Any, list[Any]] = {}
    with HistoryWriter(settings, lake=False) as writer:
        for batch in history_batches(sim):
            events = {m: t for m, t in batch.tables.items() if m is not FraudLabel}
            writer.write_events(events)
            for model, table in events.items():
                tables.setdefault(model, []).append(table)
    import pyarrow as pa

    merged = {m: pa.concat_tables(parts) for m, parts in tables.items()}
    frames = {m.topic: t.to_pandas() for m, t in merged.items()}
    return SimulatedDay(frames, merged, sum(t.num_rows for t in merged.values()))


def produce(settings: Settings, tables: dict[Any, Any]) -> int:
    ensure_topics(settings, event_topics(settings))
    with EventProducer(settings.bootstrap_servers, topic_prefix=settings.topic_prefix) as producer:
        return sum(produce_in_time_order(producer, tables).values())


def halves(tables: dict[Any, Any]) -> tuple[dict[Any, Any], dict[Any, Any]]:
    """Split every table at the median event time (first half produced before the workers start)."""
    first, second = {}, {}
    for model, table in tables.items():
        rows = sorted(validated(model, table), key=lambda e: e.event_time)
        cut = len(rows) // 2
        from events.schemas import from_events

        first[model], second[model] = from_events(rows[:cut], model), from_events(rows[cut:], model)
    return first, second


@dataclass
class Truth:
    """Oracle values at every point the stream must emit (one per entity and distinct event time)."""

    expected: dict[str, pd.DataFrame]

    @classmethod
    def of(cls, settings: Settings, day: SimulatedDay) -> Truth:
        out = {}
        for group in stream_groups(settings):
            events = day.frames[group.source.topic]
            key = group.entity.join_key
            pts = events.loc[events[key].notna(), [key, "event_time"]].drop_duplicates()
            points = pts.rename(columns={"event_time": "as_of"})
            out[group.name] = oracle_at_points(group, events, points)
        return cls(out)

    def offline_mismatches(self, settings: Settings) -> list[str]:
        """Differences between the offline feature tables and the oracle (empty = converged)."""
        problems: list[str] = []
        with offline_session(settings) as store:
            for group in stream_groups(settings):
                expected = self.expected[group.name]
                if not store.table_exists(group.table_name):
                    problems.append(f"{group.name}: no offline table yet")
                    continue
                key = group.entity.join_key
                cols = ", ".join([key, "event_time", *(f.name for f in group.features)])
                got = store.query(f"SELECT {cols} FROM {group.table_name} ORDER BY {key}, event_time").to_pandas()
                problems += [f"{group.name}: {m}" for m in mismatches(got, expected.reset_index(drop=True), limit=3)]
        return problems


def batch_engine_mismatches(settings: Settings, truth: Truth) -> list[str]:
    from features.batch.engine import compute_at_points

    problems: list[str] = []
    with offline_session(settings) as store:
        for group in stream_groups(settings):
            expected = truth.expected[group.name]
            points = expected[[group.entity.join_key, "event_time"]].rename(columns={"event_time": "as_of"})
            got = compute_at_points(store, group, points)
            problems += [f"{group.name} (batch): {m}" for m in mismatches(got, expected, limit=3)]
    return problems


def online_mismatches(settings: Settings, groups: list[WindowedFeatureGroup]) -> list[str]:
    """Redis must hold the newest offline row of every entity still inside its TTL."""
    online = RedisOnlineStore.from_settings(settings)
    now = datetime.now(UTC).replace(tzinfo=None)
    problems: list[str] = []
    with offline_session(settings) as store:
        latest = {g.name: store.latest_features(g).to_pandas() for g in groups}
    for group in groups:
        frame = latest[group.name]
        key = group.entity.join_key
        fresh = frame[frame["event_time"] > now - group.ttl + timedelta(minutes=2)]
        got = online.read_many([{key: k} for k in fresh[key]], [group])
        for (_, row), vector in zip(fresh.iterrows(), got, strict=True):
            values = vector[group.name]
            if values.status != "ok" or values.event_time.replace(tzinfo=None) != row["event_time"]:
                problems.append(f"{group.name} {row[key]}: online {values.status} @ {values.event_time}, "
                                f"offline @ {row['event_time']}")
                continue
            for f in group.features:
                want, have = row[f.name], values.values[f.name]
                if mismatches(pd.DataFrame([{"v": have}]), pd.DataFrame([{"v": want}])):
                    problems.append(f"{group.name} {row[key]} {f.name}: online {have!r} != offline {want!r}")
        if len(problems) > 10:
            break
    return problems


def wait_until(check: Callable[[], list[str]], timeout: float, workers: Workers, what: str,
               interval: float = 2.0) -> None:
    """Poll ``check`` until it reports no problems; on timeout fail with the problems and the worker logs."""
    deadline = time.monotonic() + timeout
    problems = ["not checked"]
    while time.monotonic() < deadline:
        problems = check()
        if not problems:
            return
        dead = [n for n, p in workers.procs.items() if p.poll() is not None]
        if dead:
            break
        time.sleep(interval)
    logs = "\n".join(f"--- {n} ---\n{workers.log(n)}" for n in ("compute", "ingest", "archive"))
    statuses = {n: read_status(workers.settings, f"stream-{n}") for n in ("compute", "ingest")}
    pytest.fail(f"{what} did not converge: {problems[:8]}\nstatus: {json.dumps(statuses, default=str)}\n{logs}")


def wait_status(settings: Settings, worker: str, predicate: Callable[[dict[str, Any]], bool], timeout: float,
                workers: Workers) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = read_status(settings, worker)
        if status is not None and predicate(status):
            return status
        time.sleep(0.2)
    pytest.fail(f"{worker} status never matched: {read_status(settings, worker)}\n"
                f"{workers.log(worker.removeprefix('stream-'))}")


def read_records(settings: Settings, topic: str, want: int, timeout: float = 30.0) -> list[Any]:
    """Up to ``want`` records of ``topic`` from the beginning (a fresh consumer group)."""
    import uuid

    from confluent_kafka import Consumer

    consumer = Consumer({"bootstrap.servers": settings.bootstrap_servers, "group.id": f"reader-{uuid.uuid4().hex}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "session.timeout.ms": 2000, "heartbeat.interval.ms": 500})
    consumer.subscribe([topic])
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < want and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                out.append(msg)
    finally:
        consumer.close()
    return out


def committed_total(settings: Settings, group_id: str, topics: list[str]) -> int:
    """Sum of a consumer group's committed offsets over the topics' partitions (= records it has committed)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": settings.bootstrap_servers, "group.id": group_id,
                         "enable.auto.commit": False})
    try:
        tps = [TopicPartition(t, p) for t in topics for p in range(settings.topic_partitions)]
        return sum(max(tp.offset, 0) for tp in consumer.committed(tps, timeout=10))
    finally:
        consumer.close()

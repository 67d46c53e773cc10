"""The main job `riskpipe up` runs once per data dir: history -> registry -> backfill -> first model.

Each stage is a one-shot ``setup`` service of the stack (see ``riskpipe/stack/services.py``), so the
supervisor orders, reports and health-checks it like any process, and ``riskpipe status`` lists it.
A stage is *done* when ``<data_dir>/pipeline/state.json`` records it; a second ``up`` skips it. The
state is written only after a stage finished, so an interrupted ``up`` resumes at the stage that
did not finish (the backfill and the registry apply are idempotent; a half-written history is the
one case that needs ``rm -r <data_dir>``, the hint says so).

Why the backfill runs in-process (the batch engine's ``compute_group``, which the ``features_backfill``
DAG's per-day tasks call too) rather than through Airflow's REST API: it runs before Airflow has
started, so the first model exists by the time the stream workers and Airflow come up, DuckDB's
single-writer lock is not contended, and no minutes go to waiting for the dag-processor to parse the
DAG; the DAG remains the way to backfill later (README: "Backfills and retraining from the Airflow UI").
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from riskpipe.errors import UsageError
from riskpipe.settings import Settings

# Chargebacks of the simulated history arrive after a median of 6 h (the simulator's default is 48 h): on a few days
# of history a 48 h delay leaves the test period without known fraud, and the training gap must cover the delay.
LABEL_DELAY_MEDIAN_H = 6.0


@dataclass(frozen=True)
class Stage:
    """One step of the main job: ``run`` returns a small JSON-able result, kept in the state file."""

    name: str
    description: str
    run: Callable[[Settings], dict[str, Any]]
    summary: Callable[[dict[str, Any]], str]


# ---- state -------------------------------------------------------------------------------------------------------


def state_path(settings: Settings) -> Path:
    return settings.data_dir / "pipeline" / "state.json"


def read_state(settings: Settings) -> dict[str, dict[str, Any]]:
    try:
        return json.loads(state_path(settings).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _record(settings: Settings, name: str, result: dict[str, Any], seconds: float) -> None:
    state = read_state(settings)
    state[name] = {"finished_at": datetime.now(UTC).isoformat(timespec="seconds"), "seconds": round(seconds, 1),
                   "result": result}
    path = state_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2, default=str))
    os.replace(tmp, path)


def stage_result(settings: Settings, name: str) -> dict[str, Any] | None:
    entry = read_state(settings).get(name)
    return None if entry is None else entry["result"]


def _require(settings: Settings, name: str) -> dict[str, Any]:
    result = stage_result(settings, name)
    if result is None:
        raise UsageError(f"pipeline stage {name!r} has not run yet: run `riskpipe up`")
    return result


def _progress(line: str) -> None:
    """Progress of a long stage on the console of `riskpipe up` (the supervisor reports start and end)."""
    print(f"    {line}", flush=True)


# ---- stages ------------------------------------------------------------------------------------------------------


def simulation_config(settings: Settings, *, start: datetime | None = None, days: float | None = None) -> Any:
    """The simulation of the main job; live traffic reuses seed and accounts so it meets the same population."""
    from events.simulator.config import LabelDelay, SimulationConfig, default_regimes

    days = settings.pipeline_history_days if days is None else days
    if start is None:  # the history runs up to now, so live traffic continues it without a gap
        start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(days=days)
    return SimulationConfig(seed=settings.pipeline_seed, accounts=settings.pipeline_accounts, days=days,
                            start=start, regimes=default_regimes(days, 1),
                            label_delay=LabelDelay(median_hours=LABEL_DELAY_MEDIAN_H))


def run_history(settings: Settings) -> dict[str, Any]:
    """Simulate the history into the offline store (baseline regime: drift is the demo's job).

    Not into the lake: ``stream-warmup`` replays the history through Kafka, and the archive worker
    writes the lake from there, as it does for live events.
    """
    from events.simulator.history import run_history as simulate

    config = simulation_config(settings)
    report = simulate(config, settings, lake=False, offline=True)
    end = config.start + timedelta(days=config.days)
    return {"start": config.start.isoformat(), "end": end.isoformat(), "accounts": config.accounts,
            "events": report.events, "labels": report.labels, "fraud_events": report.fraud_events}


def run_apply(settings: Settings) -> dict[str, Any]:
    """Record the feature definitions in the registry (a no-op when it already matches)."""
    from features.backfill import apply_plan
    from features.offline_access import offline_session

    with offline_session(settings) as store:
        result = apply_plan(store, applied_by="riskpipe-up")
    return {"apply_seq": result["apply_seq"], "groups": len(result["changes"]), "counts": result["counts"]}


def _history_window(settings: Settings) -> tuple[datetime, datetime]:
    history = _require(settings, "history")
    return datetime.fromisoformat(history["start"]), datetime.fromisoformat(history["end"])


def run_backfill(settings: Settings) -> dict[str, Any]:
    """Every feature group over the whole history (what training joins point-in-time).

    One ``compute_group`` call per group over the range (the batch engine the DAG's per-day tasks
    call): per-day slices would redo each window's look-back seven times on a small history.
    """
    from features.batch.engine import compute_group
    from features.definitions.catalog import FEATURE_GROUPS
    from features.offline_access import offline_session

    start, end = _history_window(settings)
    rows: dict[str, int] = {}
    with offline_session(settings) as store:
        for group in FEATURE_GROUPS:
            began = time.monotonic()
            rows[group.name] = compute_group(store, group, start, end)
            _progress(f"backfill: {group.name} v{group.version}: {rows[group.name]:,} rows "
                      f"({time.monotonic() - began:.1f}s)")
    return {"start": start.isoformat(), "end": end.isoformat(), "rows": sum(rows.values()), "groups": rows}


def run_train(settings: Settings) -> dict[str, Any]:
    """Train on the history, evaluate, register and promote the first model (serving picks it up)."""
    from training.config import TrainingConfig
    from training.pipeline import run_training
    from training.promotion import production_tag

    start, end = _history_window(settings)
    config = TrainingConfig.from_settings(settings, start=start, end=end, gap=timedelta(hours=2 * LABEL_DELAY_MEDIAN_H))
    # The first model of a fresh data dir is promoted even if the gate hesitates: without one nothing is served.
    run = run_training(settings, config, force_promote=production_tag(settings) is None)
    return {"tag": run.tag, "promoted": bool(run.decision["promote"]), "reason": run.decision["reason"],
            "auc_pr": run.metrics.get("auc_pr"), "report": f"{run.run_dir}/report.html",
            "production": production_tag(settings)}


def run_stream_warmup(settings: Settings) -> dict[str, Any]:
    """Replay the history's events through Kafka so the stream workers' windows hold each account's past.

    Without it the Faust state starts empty: the online store has no values (every feature of a
    request is missing) and then windows that count only live events, unlike the history the model
    was trained on. Waits until the feature worker has consumed every replayed event and the newest
    one's features are in Redis.
    """
    from events.contracts import EVENT_TYPES, Transaction
    from events.producer import EventProducer
    from events.schemas import arrow_schema
    from events.sinks import produce_in_time_order
    from features.offline_access import offline_session

    with offline_session(settings) as store:
        tables = {m: store.query(f"SELECT {', '.join(arrow_schema(m).names)} FROM {m.table} ORDER BY event_time")
                  for m in EVENT_TYPES}
    producer = EventProducer(settings.bootstrap_servers)
    produced = sum(produce_in_time_order(producer, tables).values())
    producer.flush()
    _progress(f"stream-warmup: {produced:,} events to Kafka; waiting for the feature worker")
    last = tables[Transaction].slice(tables[Transaction].num_rows - 1).to_pylist()[0]
    seconds = _wait_stream(settings, produced, last["account_id"], last["event_time"])
    return {"events": produced, "seconds_to_features": round(seconds, 1), "broker_run": _broker_run(settings)}


def _wait_stream(settings: Settings, produced: int, account_id: str, newest: datetime,
                 timeout_s: float = 600.0) -> float:
    from features.definitions.catalog import get_group
    from features.online.redis_store import RedisOnlineStore
    from streaming.status import read_status

    group, online = get_group("account_txn_velocity"), RedisOnlineStore.from_settings(settings)
    started = time.monotonic()
    newest = newest.replace(tzinfo=UTC) if newest.tzinfo is None else newest
    while time.monotonic() - started < timeout_s:
        counters = (read_status(settings, "stream-compute") or {}).get("counters", {})
        done = counters.get("events", 0) + counters.get("rejected", 0) >= produced
        values = online.read({"account_id": account_id}, [group])[group.name]
        if done and values.event_time is not None and values.event_time >= newest:
            return time.monotonic() - started
        time.sleep(1)
    raise RuntimeError(f"the stream workers did not catch up with {produced:,} replayed events in {timeout_s:.0f}s "
                       f"(`riskpipe status`, `riskpipe logs stream-compute`)")


def _broker_run(settings: Settings) -> float | None:
    """When the local in-memory broker started: its topics (and Faust's state) die with it."""
    from riskpipe.stack.service import ServiceState

    if settings.kafka_bootstrap_servers or not settings.broker_storage.startswith("memory://"):
        return None
    state = ServiceState.load(settings.run_dir, "broker")
    return state.started_at if state else None


def stream_warm(settings: Settings) -> bool:
    """Warm-up done for this broker: a restarted in-memory broker lost the replayed events and the Faust state."""
    result = stage_result(settings, "stream-warmup")
    return result is not None and result.get("broker_run") == _broker_run(settings)


STAGES: tuple[Stage, ...] = (
    Stage("history", "simulate the history (accounts, fraud, late labels) into the offline store and the lake",
          run_history, lambda r: f"{r['events']:,} events, {r['labels']:,} labels, {r['accounts']:,} accounts"),
    Stage("features-apply", "record the feature definitions in the registry", run_apply,
          lambda r: f"{r['groups']} groups, registry apply #{r['apply_seq'] or 'none (already current)'}"),
    Stage("backfill", "compute every feature group over the history (batch engine)", run_backfill,
          lambda r: f"{r['rows']:,} feature rows in {len(r['groups'])} groups, {r['start'][:10]}..{r['end'][:10]}"),
    Stage("train", "train, evaluate and promote the first model (training.pipeline)", run_train,
          lambda r: f"{r['production']} (AUC-PR {r['auc_pr']:.3f})" if r.get("auc_pr") is not None
          else str(r["production"])),
    Stage("stream-warmup", "replay the history through Kafka: warm stream windows, online store and lake",
          run_stream_warmup, lambda r: f"{r['events']:,} events replayed, features in Redis after "
                                       f"{r['seconds_to_features']}s"),
)


def get_stage(name: str) -> Stage:
    for stage in STAGES:
        if stage.name == name:
            return stage
    raise KeyError(name)


def run_stage(settings: Settings, name: str) -> dict[str, Any]:
    """Run one stage and record it as done (the supervisor calls this as the stage's ``setup``)."""
    started = time.monotonic()
    result = get_stage(name).run(settings)
    _record(settings, name, result, time.monotonic() - started)
    return result


def stage_done(settings: Settings, name: str) -> bool:
    return name in read_state(settings)


def stage_address(settings: Settings, name: str) -> str:
    """What ``riskpipe status`` shows for a stage: its result in one line, or 'pending'."""
    result = stage_result(settings, name)
    return "pending" if result is None else get_stage(name).summary(result)


# ---- the summary `riskpipe up` ends with -----------------------------------------------------------------------


def example_account(settings: Settings) -> str:
    """An account with live features in Redis (so the example curl scores a known customer), else one from history."""
    import redis

    password = settings.redis_password.get_secret_value() if settings.redis_password else None
    try:
        client = redis.Redis.from_url(settings.redis_dsn, password=password, socket_timeout=1)
        for key in client.scan_iter(match=f"{settings.online_key_prefix}:fv:account_txn_velocity:*", count=500):
            return key.decode().rsplit(":", 1)[-1]
    except redis.RedisError:
        pass
    import numpy as np

    from events.simulator.population import build_population

    pop = build_population(settings.pipeline_accounts, settings.pipeline_seed)
    return str(pop.pool.take(pop.account_id(np.array([0])))[0].as_py())


def summary_lines(settings: Settings) -> list[str]:
    """Where everything is once `riskpipe up` finished: UIs, logins, latest model and reports, two curls."""
    from monitoring.run import latest_result
    from riskpipe.stack.airflow import ADMIN_USER, admin_password
    from training.promotion import production_tag

    train = stage_result(settings, "train") or {}
    lines = [
        f"Airflow UI       {settings.airflow_url}   login: {ADMIN_USER} / {admin_password(settings) or '(not yet)'}",
        f"Scoring API docs {settings.serving_url}/docs",
        f"Production model {production_tag(settings) or 'none'}",
        f"Training report  {train.get('report', 'none yet')}",
    ]
    latest = latest_result(settings)
    report = latest["report_dir"] if latest else "first report after the hourly `monitoring` DAG run"
    lines.append(f"Monitoring       {report} (`riskpipe monitor` shows the figures)")
    body = json.dumps({"account_id": example_account(settings), "txn_type": "withdrawal", "amount": 950,
                       "currency": "USD", "device_id": "dev-new-1", "ip": "10.0.0.9", "country": "BR"})
    lines += [
        "Try:",
        f"  curl -s {settings.serving_url}/model",
        f"  curl -s {settings.serving_url}/score -H 'content-type: application/json' -d '{body}'",
        "Then: `riskpipe demo` (fraud, drift, retraining), `riskpipe status`, `riskpipe down`.",
    ]
    return lines

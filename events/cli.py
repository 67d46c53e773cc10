"""``riskpipe simulate`` and ``riskpipe replay``: thin wrappers, the logic lives in the modules.

Every option is documented in ``--help``; a bad value becomes a one-line ``UsageError``
that names the option (the root CLI prints it and exits 2).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError

from riskpipe.errors import UsageError
from riskpipe.settings import get_settings

log = logging.getLogger(__name__)

# config field -> the option a user typed, for error messages
OPTION_OF = {
    "seed": "--seed", "accounts": "--accounts", "days": "--history", "start": "--start", "rate": "--rate",
    "fraud_rate": "--fraud-rate", "regimes": "--regimes/--regime-file", "label_delay.median_hours":
    "--label-delay-median", "label_delay.sigma": "--label-delay-sigma", "label_delay.never_rate":
    "--label-never-rate",
}


def _config(**values: Any) -> Any:
    from events.simulator.config import SimulationConfig

    try:
        return SimulationConfig(**values)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise UsageError(f"{OPTION_OF.get(loc, loc)}: {err['msg']}") from exc


def _parse_start(text: str | None, days: float) -> datetime:
    if text is None:
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        return today - timedelta(days=days)
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise UsageError(f"--start {text!r}: use an ISO date or time, e.g. 2026-01-01 or 2026-01-01T06:00Z") from exc
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _print(payload: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(payload, indent=2, default=str))
        return
    for key, value in payload.items():
        typer.echo(f"{key:<24} {value}")


def simulate(
    history: float | None = typer.Option(None, "--history", metavar="DAYS",
                                         help="History mode: simulate DAYS days into the lake and offline store."),
    live: float | None = typer.Option(None, "--live", metavar="RATE",
                                      help="Live mode: produce about RATE events/s to Kafka, event time = now."),
    accounts: int = typer.Option(5_000, help="Population size (accounts with their own behaviour profile)."),
    rate: float = typer.Option(12.0, help="History: mean legitimate events per account per day."),
    fraud_rate: float = typer.Option(0.008, help="Share of transactions that are fraudulent (0 to 0.5)."),
    regimes: int = typer.Option(3, help="Built-in drift regimes spread over the run: 1 baseline, 2 +scam wave, "
                                        "3 +evasive fraud (slow card testing, slow ATO drains)."),
    regime_file: Path | None = typer.Option(None, help="JSON list of regimes (name, start_day, mix, tactics) "
                                                       "instead of --regimes; see events/simulator/config.py."),
    seed: int = typer.Option(7, help="Random seed: the same seed and options give the same output."),
    start: str | None = typer.Option(None, help="History: first event day/time (ISO, UTC); default today "
                                                "00:00 UTC minus DAYS."),
    label_delay_median: float = typer.Option(48.0, metavar="HOURS", help="Median delay until fraud is labelled."),
    label_delay_sigma: float = typer.Option(1.2, help="Log-normal spread of the label delay (1.2: hours to weeks)."),
    label_never_rate: float = typer.Option(0.1, help="Share of fraud that is never labelled."),
    offline: bool = typer.Option(True, "--offline/--no-offline", help="History: append to the offline store."),
    lake: bool = typer.Option(True, "--lake/--no-lake", help="History: write Parquet partitions to the lake."),
    duration: float | None = typer.Option(None, metavar="SECONDS", help="Live: stop after SECONDS (default: "
                                                                        "run until Ctrl-C)."),
    max_events: int | None = typer.Option(None, help="Live: stop after this many records."),
    bootstrap_servers: str | None = typer.Option(None, help="Live: Kafka bootstrap servers (default: settings)."),
    topic_prefix: str = typer.Option("", help="Live: prefix for every topic name (tests, tenants)."),
    score_url: str | None = typer.Option(None, help="Live: score every transaction at this scoring service "
                                                    "(POST URL/score) before producing it, like a payment gateway."),
    status_name: str | None = typer.Option(None, help="Live: write a worker status file under this name (the "
                                                      "supervisor's health check and `riskpipe status` read it)."),
    as_json: bool = typer.Option(False, "--json", help="Print the run report as JSON."),
) -> None:
    """Simulate accounts, fraud (ATO, P2P scams, stolen payment details), drift and late labels."""
    from events.simulator.config import LabelDelay, default_regimes, load_regimes

    if (history is None) == (live is None):
        raise UsageError("choose exactly one mode: --history DAYS or --live RATE")
    if live is not None and live <= 0:
        raise UsageError("--live RATE must be > 0 events per second")
    if duration is not None and duration <= 0:
        raise UsageError("--duration must be > 0 seconds")
    days = history if history is not None else 1.0
    if days <= 0:
        raise UsageError("--history DAYS must be > 0")
    try:
        delay = LabelDelay(median_hours=label_delay_median, sigma=label_delay_sigma, never_rate=label_never_rate)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise UsageError(f"{OPTION_OF.get('label_delay.' + str(err['loc'][0]), 'label delay')}: {err['msg']}") from exc
    plan = load_regimes(regime_file) if regime_file is not None else default_regimes(days, regimes)
    when = _parse_start(start, days) if live is None else datetime.now(UTC)
    config = _config(seed=seed, accounts=accounts, days=days, start=when, rate=rate, fraud_rate=fraud_rate,
                     regimes=plan, label_delay=delay)
    settings = get_settings()
    if history is not None:
        _simulate_history(config, settings, offline=offline, lake=lake, as_json=as_json)
    else:
        _simulate_live(config, live or 0.0, bootstrap_servers or settings.bootstrap_servers, topic_prefix,
                       duration, max_events, as_json, score_url=score_url, status_name=status_name)


def _simulate_history(config: Any, settings: Any, *, offline: bool, lake: bool, as_json: bool) -> None:
    from rich.progress import Progress

    from events.simulator.history import run_history

    with Progress(transient=True, disable=as_json) as bar:
        task = bar.add_task(f"simulating {config.days:g} days x {config.accounts} accounts", total=1.0)
        report = run_history(config, settings, lake=lake, offline=offline,
                             progress=lambda done: bar.update(task, completed=done))
    payload = {**asdict(report), "events_per_second": round(report.events_per_second),
               "lake": settings.lake_uri if lake else None,
               "offline": str(settings.duckdb_path) if offline and settings.offline_backend == "duckdb"
               else (settings.offline_backend if offline else None)}
    payload["seconds"] = round(report.seconds, 2)
    _print(payload, as_json)


def _simulate_live(config: Any, rate: float, servers: str, prefix: str, duration: float | None,
                   max_events: int | None, as_json: bool, *, score_url: str | None = None,
                   status_name: str | None = None) -> None:
    from events.live_scoring import GatewayScorer, load_history
    from events.producer import EventProducer, ProduceError
    from events.simulator.engine import Simulator
    from events.simulator.live import LiveReport, run_live
    from streaming.status import WorkerStatus

    settings = get_settings()
    sim = Simulator(config, live_rate=rate)
    producer = EventProducer(servers, topic_prefix=prefix)
    api_key = settings.serving_api_key.get_secret_value() if settings.serving_api_key else None
    gateway = GatewayScorer(score_url, api_key=api_key, history=load_history(settings)) if score_url else None
    status = WorkerStatus(status_name, state="running") if status_name else None

    def on_tick(report: LiveReport) -> None:
        assert status is not None
        status.counters.clear()
        status.counters.update({"produced": sum(report.produced.values()),
                                **(gateway.counters if gateway else {})})
        status.last_event_us = int(datetime.now(UTC).timestamp() * 1_000_000)
        status.detail = f"model {gateway.last_model}" if gateway and gateway.last_model else ""
        status.write(settings)

    if not as_json:
        scoring = f", scoring each transaction at {score_url}" if score_url else ""
        typer.echo(f"producing ~{rate:g} events/s to {servers}{scoring} (Ctrl-C to stop)")
    if status is not None:
        status.write(settings, force=True)
    try:
        report = run_live(sim, producer, duration_s=duration, max_events=max_events,
                          on_tick=on_tick if status else None, before_produce=gateway)
    except ProduceError as exc:
        raise UsageError(f"producing to {servers} failed: {exc}") from exc
    finally:
        if status is not None:
            status.state = "stopped"
            status.write(settings, force=True)
        if gateway is not None:
            gateway.close()
    _print({"produced": dict(report.produced), "events_per_second": round(report.events_per_second),
            "seconds": round(report.seconds, 2), "labels_pending": report.labels_pending,
            **({"scoring": dict(gateway.counters)} if gateway else {})}, as_json)


def replay(
    file: Path = typer.Argument(..., help="Parquet, CSV (.csv/.csv.gz) or JSON lines (.jsonl/.ndjson) file."),
    map_: list[str] = typer.Option([], "--map", metavar="COLUMN=FIELD",
                                   help="Map a file column to a contract field (repeat). Targets 'label' "
                                        "(truthy = fraud), 'fraud_type' and 'label_time' make label events."),
    set_: list[str] = typer.Option([], "--set", metavar="FIELD=VALUE",
                                   help="Constant for a field the file lacks, e.g. --set currency=EUR (repeat)."),
    event_type: str = typer.Option("auto", "--type", help="transaction, login, account_change or auto "
                                                          "(from the mapped fields)."),
    to: str = typer.Option("kafka", help="kafka: produce in event-time order; offline: load the offline "
                                         "store (and lake)."),
    speed: float = typer.Option(0.0, help="Kafka: pace by event time, SPEED x real time (0 = as fast as possible)."),
    retime: bool = typer.Option(False, help="Kafka: rewrite event times to the moment of producing (needs --speed)."),
    fraud_type: str = typer.Option("stolen_payment", help="Fraud type of labels when no column is mapped "
                                                          "to fraud_type."),
    label_delay_hours: float = typer.Option(0.0, help="Label time = event time + this, when no label_time column."),
    time_unit: str | None = typer.Option(None, help="Unit of numeric times: s, ms, us or ns (default: inferred)."),
    max_errors: int = typer.Option(0, help="Skip up to this many invalid rows (reported) instead of failing."),
    lake: bool = typer.Option(True, "--lake/--no-lake", help="Offline: also write the lake partitions."),
    dry_run: bool = typer.Option(False, help="Validate and report, write nothing."),
    bootstrap_servers: str | None = typer.Option(None, help="Kafka bootstrap servers (default: settings)."),
    topic_prefix: str = typer.Option("", help="Prefix for every topic name."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Replay a history file mapped onto the event contracts, to Kafka or the offline store."""
    from events import replay as rp

    if to not in ("kafka", "offline"):
        raise UsageError(f"--to {to!r}: use kafka or offline")
    if speed < 0:
        raise UsageError("--speed must be >= 0")
    if retime and (to != "kafka" or speed <= 0):
        raise UsageError("--retime needs --to kafka and --speed > 0")
    table = rp.read_file(file)
    plan = rp.make_plan(table, rp.parse_pairs(map_, "--map"), rp.parse_pairs(set_, "--set"),
                        event_type=event_type, fraud_type=fraud_type, label_delay_hours=label_delay_hours,
                        time_unit=time_unit, id_prefix=file.stem)
    mapped = rp.map_rows(table, plan)
    rp.check_errors(mapped, max_errors)
    payload: dict[str, Any] = {"file": str(file), "type": plan.model.__name__, "rows": table.num_rows,
                               "events": len(mapped.events), "labels": len(mapped.labels),
                               "rejected": dict(mapped.reasons())}
    settings = get_settings()
    if not dry_run and to == "kafka":
        from events.producer import EventProducer, ProduceError

        servers = bootstrap_servers or settings.bootstrap_servers
        try:
            payload["produced"] = dict(rp.produce(mapped, EventProducer(servers, topic_prefix=topic_prefix),
                                                  speed=speed, retime=retime))
        except ProduceError as exc:
            raise UsageError(f"producing to {servers} failed: {exc}") from exc
    elif not dry_run:
        payload["written"] = rp.load_offline(mapped, settings, lake=lake)
    _print(payload, as_json)

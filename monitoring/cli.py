"""`riskpipe monitor [show] | run | exporter`: the pipeline's current figures in the terminal.

In the embedded mode there is no Grafana, so `riskpipe monitor` prints what the dashboards show:
serving QPS/latency, consumer lag, worker freshness, the last sync and the latest monitoring run
with its alarms and report paths. `run` (monitoring/run_cli.py) runs the drift/skew/performance
checks now; `exporter` is the Prometheus exporter process `riskpipe up` and docker-compose run.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from monitoring.run_cli import run_command
from riskpipe.errors import UsageError
from riskpipe.settings import get_settings

monitor_app = typer.Typer(help="Service and model monitoring: current figures, monitoring runs, the exporter.",
                          invoke_without_command=True)
console = Console(width=None if sys.stdout.isatty() else 160)


def _num(value: Any, fmt: str = ".3g") -> str:
    return "-" if value is None else format(value, fmt)


def _ago(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.0f}s"


def print_figures(fig: dict[str, Any]) -> None:
    """The figures of `figures.collect` as rich tables, one per source, each saying why when it is missing."""
    serving = fig["serving"]
    if serving["up"]:
        table = Table(title=f"serving ({serving['url']})")
        for col in ("endpoint", "requests", "qps", "p50 ms", "p99 ms", "latency over"):
            table.add_column(col)
        for e in serving["endpoints"]:
            table.add_row(e["endpoint"], str(e["requests_total"]), _num(e["qps"]), _num(e["p50_ms"]),
                          _num(e["p99_ms"]), e["latency_window"])
        console.print(table)
        console.print(f"degraded (no online store): {serving['degraded_total']}, "
                      f"missing features served: {serving['missing_features_total']}")
    else:
        console.print(f"[yellow]serving: not reachable at {serving['url']} ({serving['error']}); {serving['hint']}[/]")

    lag = fig["lag"]
    if lag["up"]:
        table = Table(title="consumer lag (messages; Tansu may read low by one batch)")
        for col in ("consumer", "group", "topic", "lag"):
            table.add_column(col)
        for r in lag["rows"]:
            table.add_row(r["consumer"], r["group"], r["topic"], str(r["lag"]))
        if not lag["rows"]:
            table.add_row("-", "-", "no committed offsets yet", "-")
        console.print(table)
    else:
        console.print(f"[yellow]consumer lag: {lag['error']}; {lag['hint']}[/]")

    table = Table(title="stream workers")
    for col in ("worker", "state", "up", "last event (UTC)", "freshness", "counters"):
        table.add_column(col, overflow="fold")
    for w in fig["workers"]:
        counters = ", ".join(f"{k}={v}" for k, v in sorted(w["counters"].items()) if v)
        table.add_row(w["worker"], str(w["state"]), "yes" if w["up"] else "no", w["last_event_time"] or "-",
                      _ago(w["freshness_s"]), counters)
    console.print(table)

    sync = fig["sync"]
    if not sync["up"]:
        console.print(f"[yellow]last sync: offline store not readable now ({sync['error']})[/]")
    elif not sync["groups"]:
        console.print("last sync: none yet (the `features_sync` DAG runs every 10 minutes)")
    else:
        table = Table(title="last online/offline sync")
        for col in ("group", "run at (UTC)", "mismatch rate", "missing online", "stale online", "freshness"):
            table.add_column(col)
        for r in sync["groups"]:
            table.add_row(r["group_name"], str(r["run_at"]), _num(r["mismatch_rate"]), str(r["missing_online"]),
                          str(r["stale_online"]), _ago(r["freshness_s"]))
        console.print(table)

    run = fig["monitoring"].get("run")
    if run is None:
        console.print(f"model monitoring: {fig['monitoring']['message']}")
        return
    console.print(f"model monitoring: run {run['run_id']}  drift share {_num(run['drift_share'])}  "
                  f"prediction drift {_num(run['prediction_drift'])}  "
                  f"skew (max mismatch) {_num(run['skew_max_mismatch_rate'])}  AUC-PR {_num(run['auc_pr'])}  "
                  f"retrain: {'YES' if run['should_retrain'] else 'no'}")
    for alarm in run["alarms"]:
        console.print(f"  [red]alarm[/] {alarm.get('message', alarm) if isinstance(alarm, dict) else alarm}")
    console.print(f"  reports: {run['report_dir']}")


@monitor_app.callback()
def show(ctx: typer.Context,
         as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
         interval: float = typer.Option(1.0, "--interval", min=0.0,
                                        help="Seconds between the two scrapes of serving's /metrics (QPS window).")
         ) -> None:
    """Print the current figures: serving, consumer lag, workers, last sync, latest monitoring run."""
    if ctx.invoked_subcommand is not None:
        return
    from monitoring.figures import collect

    fig = collect(get_settings(), interval_s=interval)
    if as_json:
        typer.echo(json.dumps(fig, indent=2, default=str))
    else:
        print_figures(fig)


@monitor_app.command()
def exporter(host: str = typer.Option(None, help="Interface to bind (default: settings.host)."),
             port: int = typer.Option(None, help="Port (default: RISKPIPE_EXPORTER_PORT).")) -> None:
    """Run the Prometheus exporter: consumer lag, worker progress, sync results, monitoring run figures."""
    from monitoring.exporter import run_exporter
    from streaming.logs import setup_logging

    setup_logging()
    settings = get_settings()
    try:
        run_exporter(settings, host, port)
    except OSError as exc:  # the port is taken
        raise UsageError(f"metrics exporter cannot listen on {host or settings.host}:{port or settings.exporter_port}"
                         f" ({exc}); set RISKPIPE_EXPORTER_PORT") from exc


monitor_app.command("run")(run_command)  # the data-monitoring layer's command (drift, skew, performance)

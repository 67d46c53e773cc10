"""`riskpipe monitor run`: run the data-monitoring checks now and print what they found.

Mounted by ``monitoring/cli.py``. It exits 0 whether or not alarms fired (an alarm is a finding,
not a failure; the hourly DAG is what acts on it); bad arguments and a missing production model
are ``UsageError`` (one line, exit 2).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import typer

from riskpipe.errors import UsageError


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def run_command(
    window_hours: float = typer.Option(None, "--window-hours", help="Served requests of this many hours "
                                       "(default RISKPIPE_MONITORING_WINDOW_H)."),
    now: str = typer.Option(None, "--now", help="End of the window, ISO time (UTC); default: now."),
) -> None:
    """Drain the prediction log, then feature/prediction drift, skew and performance; print alarms and reports."""
    from monitoring.run import run_monitoring
    from riskpipe.settings import get_settings

    if window_hours is not None and window_hours <= 0:
        raise UsageError(f"--window-hours must be positive, got {window_hours}")
    try:
        end = datetime.fromisoformat(now) if now else None
    except ValueError as exc:
        raise UsageError(f"--now {now!r} is not an ISO date/time") from exc
    result = run_monitoring(get_settings(), now=end,
                            window=timedelta(hours=window_hours) if window_hours is not None else None)
    s = result.summary
    drift, skew, perf = s.get("drift") or {}, s.get("skew") or {}, s.get("performance") or {}
    typer.echo(f"monitoring run {result.run_id}  model {s['model']['tag']}  window {s['window']['start']} .. "
               f"{s['window']['end']}  served rows {s['served_rows']} (drained {s['drain'].get('stored', 0)})")
    if s["drain"].get("error"):
        typer.echo(f"  drain: {s['drain']['error']}")
    if drift.get("skipped"):
        typer.echo(f"  drift: skipped ({drift['skipped']})")
    else:
        enough = "" if drift["enough_rows"] else f"  [fewer than {drift['min_rows']} rows: no alarm]"
        typer.echo(f"  feature drift: {len(drift['drifted_features'])}/{drift['features_tested']} drifted "
                   f"(share {_fmt(drift['share_drifted'])}, threshold {_fmt(drift['drift_share_threshold'])}){enough}")
        typer.echo(f"  prediction drift: {_fmt(drift['prediction_drift_score'])}  "
                   f"score mean {_fmt(drift['score_mean'])}"
                   f" vs reference {_fmt(drift['reference_score_mean'])}")
    typer.echo(f"  skew: {skew['sampled']} requests recomputed, max mismatch rate {_fmt(skew['max_mismatch_rate'])}, "
               f"skewed {skew['skewed_features'] or 'none'}, degraded excluded {skew['degraded_excluded']}")
    typer.echo(f"  performance: AUC-PR {_fmt(perf.get('auc_pr'))} (model test {_fmt(perf.get('test_auc_pr'))}), "
               f"{perf.get('positives', 0)} labelled frauds in {perf.get('rows', 0)} rows"
               + ("" if perf.get("judged") else f"  [not judged: {perf.get('reason', '-')}]"))
    for alarm in result.alarms:
        typer.echo(f"  ALARM {alarm.check}: {alarm.message}")
    typer.echo(f"  retrain: {'yes' if result.should_retrain else 'no'}")
    typer.echo(f"  reports: {result.report_dir} (drift.html, skew.png, performance.png, history.png, summary.json)")

"""`riskpipe train` and `riskpipe models list | promote TAG | rollback`.

Thin: options are parsed into ``TrainingConfig`` (so a bad value names the field) and the work
is done by ``training.pipeline`` / ``training.promotion``. Errors a user can fix are
``UsageError`` (one line from the CLI root); a failed data validation prints its table.
"""

from __future__ import annotations

import json
from datetime import datetime

import typer
from pydantic import ValidationError

from riskpipe.errors import UsageError
from riskpipe.settings import get_settings

models_app = typer.Typer(help="Model store: list models, promote one to production, roll back.",
                         no_args_is_help=True)


def _parse_time(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError as exc:
        raise UsageError(f"{option} {value!r} is not an ISO date/time (e.g. 2024-03-01 or 2024-03-01T12:00)") from exc


def train(
    start: str = typer.Option(None, "--start", help="First transaction time (ISO, UTC). Default: --end minus --days."),
    end: str = typer.Option(None, "--end", help="End of the window and label cutoff (ISO, UTC). Default: this hour."),
    days: float = typer.Option(28.0, "--days", help="Window length when --start is not given."),
    gap_hours: float = typer.Option(48.0, "--gap-hours", help="Gap between train and validation (>= label delay)."),
    device: str = typer.Option(None, "--device", help="auto | cpu | cuda (default: RISKPIPE_TRAINING_DEVICE)."),
    groups: str = typer.Option(None, "--groups", help="Comma-separated feature groups (default: all)."),
    calibrate: bool = typer.Option(False, "--calibrate", help="Isotonic calibration on the validation period."),
    force_promote: bool = typer.Option(False, "--force-promote", help="Promote even if the gate says no."),
    as_json: bool = typer.Option(False, "--json", help="Print the run summary as JSON."),
) -> None:
    """Build the PIT training set, validate, train, evaluate, register and (if it wins) promote."""
    from datetime import timedelta

    from training.config import TrainingConfig, window_ending
    from training.pipeline import clamp_to_data, run_training

    settings = get_settings()
    end_time = _parse_time(end, "--end")
    start_time = _parse_time(start, "--start")
    if start_time is None:
        start_time, end_time = window_ending(end_time, days)
        start_time = clamp_to_data(settings, start_time, end_time)
    elif end_time is None:
        _, end_time = window_ending(None, 1)
    try:
        config = TrainingConfig.from_settings(
            settings, start=start_time, end=end_time, gap=timedelta(hours=gap_hours), device=device,
            calibrate=calibrate, feature_groups=tuple(g.strip() for g in groups.split(",")) if groups else None)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise UsageError(f"training option {'.'.join(map(str, first['loc'])) or 'window'}: {first['msg']}") from exc
    run = run_training(settings, config, force_promote=force_promote)
    summary = {"run_dir": run.run_dir, "tag": run.tag, "metrics": run.metrics,
               "promoted": run.decision["promote"], "reason": run.decision["reason"]}
    if as_json:
        typer.echo(json.dumps(summary, indent=2, default=str))
        return
    m = run.metrics
    typer.echo(f"registered {run.tag}  (run {run.run_dir})")
    typer.echo(f"test: AUC-PR {m['auc_pr']:.4f} (base rate {m['positive_rate']:.4f})  AUC-ROC {m['auc_roc']:.4f}  "
               f"recall@1%FPR {m['recall_at_1pct_fpr']:.3f}  precision@{int(m['k_per_day'])}/day "
               f"{m['precision_at_k']:.3f}")
    verdict = "PROMOTED to production" if run.decision["promote"] else "not promoted"
    typer.echo(f"{verdict}: {run.decision['reason']}")
    typer.echo(f"report: {run.run_dir}/report.html")


@models_app.command("list")
def list_models(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Models in the store, newest first; `*` marks production."""
    from training import model_store, promotion

    settings = get_settings()
    production = promotion.production_tag(settings)
    rows = [{"tag": m.tag, "production": m.tag == production, "created": m.creation_time,
             "auc_pr": m.metadata.get("metrics", {}).get("auc_pr"),
             "window": m.metadata.get("training_window", {}),
             "fingerprint": str(m.metadata.get("data_fingerprint", ""))[:12]}
            for m in model_store.list_models(settings)]
    if as_json:
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    if not rows:
        typer.echo("no models yet: run `riskpipe train`")
        return
    typer.echo(f"  {'TAG':<30} {'CREATED':<26} {'AUC-PR':>7}  {'WINDOW':<43} DATA")
    for r in rows:
        auc = f"{r['auc_pr']:.4f}" if isinstance(r["auc_pr"], float) else "-"
        window = f"{r['window'].get('start', '?')} .. {r['window'].get('end', '?')}"
        typer.echo(f"{'*' if r['production'] else ' '} {r['tag']:<30} {r['created'][:25]:<26} {auc:>7}  "
                   f"{window:<43} {r['fingerprint']}")


@models_app.command("promote")
def promote(tag: str = typer.Argument(..., help="Model tag, e.g. fraud_xgb:abc123."),
            reason: str = typer.Option("manual promotion", "--reason", help="Recorded in the history.")) -> None:
    """Make TAG the production model (bypasses the gate; recorded in the history)."""
    from training import promotion

    settings = get_settings()
    entry = promotion.set_production(settings, tag, reason, action="manual")
    typer.echo(f"production: {entry['tag']} (was {entry['previous'] or 'none'})")
    _tell_serving(settings, entry)


@models_app.command("rollback")
def rollback(reason: str = typer.Option("manual rollback", "--reason", help="Recorded in the history.")) -> None:
    """Restore the previous production model."""
    from training import promotion

    settings = get_settings()
    entry = promotion.rollback(settings, reason)
    typer.echo(f"production: {entry['tag']} (rolled back from {entry['previous']})")
    _tell_serving(settings, entry)


def _tell_serving(settings: object, entry: dict) -> None:
    """Best effort: the pointer already moved; the event only saves serving a poll."""
    from training.notify import publish_promotion

    try:
        publish_promotion(settings, entry, timeout=5.0)  # type: ignore[arg-type]
    except Exception as exc:
        typer.echo(f"note: could not publish model.promoted ({exc}); serving reads the pointer file", err=True)

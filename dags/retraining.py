"""``retraining``: rebuild the training set, retrain, evaluate and promote the fraud model if it wins.

Runs weekly, and on demand: monitoring triggers it when drift crosses its threshold, and a
person can trigger it from the UI with the form below (window length, optional end, gap,
device, force promote). Each task calls one stage of ``training.pipeline``; tasks hand each
other the run directory, the model tag and the gate's small decision dict through XCom,
never frames. The offline store is opened only by ``build`` (DuckDB has one writer).

due (a scheduled run skips while the production model is younger than ``retraining_min_age_h``)
-> build -> validate (Great Expectations gate) -> train -> evaluate (report.html) -> register
(BentoML store) -> gate (champion/challenger; moves the production pointer) -> notify
(``model.promoted`` on the Kafka ``alerts`` topic, which serving watches).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import Param, dag, get_current_context, task

DEFAULT_ARGS = {
    "owner": "risk-ml",
    "retries": 1,
    "retry_delay": timedelta(minutes=5),
    "execution_timeout": timedelta(hours=3),
}


def _window_end(params: dict[str, Any]) -> datetime | None:
    """The form's end, else the run's data interval end (scheduled), else its logical date."""
    if params.get("end"):
        return datetime.fromisoformat(str(params["end"]))
    context = get_current_context()
    for key in ("data_interval_end", "logical_date"):
        value = context.get(key)
        if value is not None:
            return datetime.fromisoformat(value.isoformat()).astimezone(UTC).replace(tzinfo=None)
    return None


@dag(
    dag_id="retraining",
    description="Weekly (or drift-triggered) retraining of the fraud model with a champion/challenger gate",
    schedule="@weekly",
    start_date=datetime(2024, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["riskpipe", "training"],
    doc_md=__doc__,
    params={
        "window_days": Param(28, type="number", minimum=1, maximum=365, title="Training window (days)",
                             description="Transactions of this many days before the end are used."),
        "end": Param(None, type=["null", "string"], title="Window end (optional)",
                     description="ISO date/time (UTC); empty = the run's data interval end."),
        "gap_hours": Param(48, type="number", minimum=0, title="Gap (hours)",
                           description="Between training and validation periods; at least the label delay."),
        "device": Param("auto", type="string", enum=["auto", "cpu", "cuda"], title="XGBoost device"),
        "feature_groups": Param([], type="array", items={"type": "string"}, title="Feature groups",
                                description="Groups to train on; empty = every group of the catalog."),
        "force_promote": Param(False, type="boolean", title="Force promote",
                               description="Promote even when the challenger does not beat the champion."),
        "trigger_reason": Param("schedule", type="string", title="Why this run",
                                description="Set by monitoring (e.g. 'drift: ...') or by hand."),
    },
)
def retraining() -> None:
    @task.short_circuit
    def due() -> bool:
        """False (the rest is skipped) for a scheduled run while the production model is fresh."""
        from riskpipe.settings import get_settings
        from training.promotion import production_age, scheduled_run_due

        settings = get_settings()
        run_type = str(getattr(get_current_context()["dag_run"], "run_type", ""))
        return scheduled_run_due(run_type, production_age(settings), timedelta(hours=settings.retraining_min_age_h))

    @task
    def build(params: dict[str, Any] | None = None) -> str:
        from riskpipe.settings import get_settings
        from training.config import TrainingConfig, window_ending
        from training.pipeline import build as build_stage
        from training.pipeline import clamp_to_data

        params = params or {}
        settings = get_settings()
        start, end = window_ending(_window_end(params), float(params.get("window_days", 28)))
        start = clamp_to_data(settings, start, end)
        config = TrainingConfig.from_settings(settings, start=start, end=end,
                                              gap=timedelta(hours=float(params.get("gap_hours", 48))),
                                              device=params.get("device") or None,
                                              feature_groups=tuple(params.get("feature_groups") or ()) or None)
        return build_stage(settings, config)

    @task
    def validate(run_dir: str) -> str:
        """A bad frame fails the run at once (no retry: the same data fails the same way)."""
        from airflow.sdk.exceptions import AirflowFailException

        from training.pipeline import validate as validate_stage
        from training.validation import DataValidationError

        try:
            validate_stage(run_dir)
        except DataValidationError as exc:
            raise AirflowFailException(str(exc)) from exc
        return run_dir

    @task
    def train(run_dir: str) -> str:
        from training.pipeline import train as train_stage

        train_stage(run_dir)
        return run_dir

    @task
    def evaluate(run_dir: str) -> str:
        from training.pipeline import evaluate as evaluate_stage

        evaluate_stage(run_dir)
        return run_dir

    @task
    def register(run_dir: str) -> str:
        from riskpipe.settings import get_settings
        from training.pipeline import register as register_stage

        return register_stage(get_settings(), run_dir)

    @task
    def gate(run_dir: str, tag: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        from riskpipe.settings import get_settings
        from training.pipeline import gate as gate_stage

        decision = gate_stage(get_settings(), run_dir, tag, bool((params or {}).get("force_promote", False)))
        return {k: decision[k] for k in ("promote", "reason", "tag", "forced", "entry", "champion_tag")}

    @task
    def notify(decision: dict[str, Any]) -> dict[str, Any] | None:
        from riskpipe.settings import get_settings
        from training.pipeline import notify as notify_stage

        return notify_stage(get_settings(), decision)

    built = build()
    due() >> built
    run_dir = evaluate(train(validate(built)))
    tag = register(run_dir)
    notify(gate(run_dir, tag))


retraining()

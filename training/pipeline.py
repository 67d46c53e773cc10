"""The retraining pipeline as stage functions: build -> validate -> train -> evaluate -> register -> gate -> notify.

Each stage reads and writes files in one run directory (``<data_dir>/training/runs/<run_id>/``)
and returns small references (the run directory, a model tag, a decision dict), so the
Airflow DAG passes paths through XCom, never frames, and a test can call any stage directly.
``run_training`` chains them in-process for ``riskpipe train``.

Files of a run: ``config.json``, ``frame.parquet``, ``validation.json``, ``model.ubj`` (+
``calibrator.pkl``, ``model.json``), ``evaluation.json``, ``report.html``, ``registered.json``,
``decision.json``. The offline store is opened and closed inside ``build`` only (DuckDB allows one
writing process, and other DAGs need it between our tasks).
"""

from __future__ import annotations

import json
import logging
import pickle
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from riskpipe.errors import UsageError
from riskpipe.settings import Settings
from training.config import TrainingConfig
from training.dataset import SPLITS, TrainingSet, build_training_set, from_parquet, resolve_groups, to_parquet
from training.model import FraudModel, Thresholds, prepare_for_scoring

log = logging.getLogger(__name__)


def runs_dir(settings: Settings) -> Path:
    return settings.data_dir / "training" / "runs"


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True, default=str))


def _read_json(path: Path) -> Any:
    if not path.exists():
        raise UsageError(f"{path} does not exist: run the stage that writes it first")
    return json.loads(path.read_text())


def load_config(run_dir: Path | str) -> TrainingConfig:
    return TrainingConfig.model_validate_json(Path(run_dir, "config.json").read_text())


def load_training_set(run_dir: Path | str) -> TrainingSet:
    return from_parquet(str(Path(run_dir, "frame.parquet")))


def registry_versions(settings: Settings, names: list[str]) -> dict[str, Any]:
    """Definition version/fingerprint of each group used, plus what the registry recorded (if applied)."""
    from features.offline import get_offline_store
    from features.registry import Registry

    out: dict[str, Any] = {g.name: {"version": g.version, "fingerprint": g.fingerprint()}
                           for g in resolve_groups(names)}
    store = get_offline_store(settings)
    try:
        applied = Registry(store).current()
    finally:
        store.close()
    for name, row in applied.items():
        if name in out:
            out[name]["registry_version"] = row.version
            out[name]["registry_apply_seq"] = row.apply_seq
    return out


# ---- stages ------------------------------------------------------------------------------------
def clamp_to_data(settings: Settings, start: datetime, end: datetime) -> datetime:
    """``start`` moved up to the first transaction in the offline store, when the data begins later.

    A default window (28 days) over a younger store (`riskpipe up` simulates 7) would put every
    transaction into the validation and test periods and leave training empty; the split fractions
    apply to the data that exists instead.
    """
    from features.offline_access import offline_session

    with offline_session(settings) as store:
        if not store.table_exists("events_transactions"):
            return start
        first = store.query("SELECT min(event_time) AS t FROM events_transactions").to_pylist()[0]["t"]
    if first is None or first <= start or first >= end:
        return start
    log.info("training window starts at the first transaction", extra={"asked": str(start), "first": str(first)})
    return first.replace(microsecond=0)


def build(settings: Settings, config: TrainingConfig, run_id: str | None = None) -> str:
    """Build the training set into a new run directory; returns its path."""
    from features.offline import get_offline_store

    resolve_groups(config.feature_groups)  # an unknown group fails before anything is written
    run_id = run_id or f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    run_dir = runs_dir(settings) / run_id
    run_dir.mkdir(parents=True, exist_ok=False)
    _write_json(run_dir / "config.json", json.loads(config.model_dump_json()))
    store = get_offline_store(settings)
    try:
        training_set = build_training_set(store, config)
    finally:
        store.close()
    to_parquet(training_set, str(run_dir / "frame.parquet"))
    counts = training_set.frame.groupby("split")["label"].agg(["count", "sum"]).to_dict(orient="index")
    _write_json(run_dir / "dataset.json", {"fingerprint": training_set.fingerprint(), "splits": counts,
                                           "groups": training_set.groups,
                                           "feature_columns": training_set.feature_columns})
    log.info("built training set", extra={"run_dir": str(run_dir), "rows": len(training_set.frame)})
    return str(run_dir)


def validate(run_dir: str) -> dict[str, Any]:
    """Run the GE gate; raises ``DataValidationError`` (readable table) when the frame is bad."""
    from training.validation import DataValidationError, validate_training_set

    report = validate_training_set(load_training_set(run_dir), load_config(run_dir))
    _write_json(Path(run_dir, "validation.json"), report.to_dict())
    Path(run_dir, "validation.txt").write_text(report.render() + "\n")
    if not report.success:
        raise DataValidationError(report)
    return {"success": True, "expectations": len(report.results)}


def train(run_dir: str) -> dict[str, Any]:
    """Fit the model; saves booster, calibrator and training info in the run directory."""
    from training.train import train_model

    model = train_model(load_training_set(run_dir), load_config(run_dir))
    model.booster.save_model(str(Path(run_dir, "model.ubj")))
    if model.calibrator is not None:
        Path(run_dir, "calibrator.pkl").write_bytes(pickle.dumps(model.calibrator))
    info = {**model.info, "feature_columns": model.feature_columns,
            "thresholds": model.thresholds.to_dict() if model.thresholds else None}
    _write_json(Path(run_dir, "model.json"), info)
    return {"device": model.info["device"], "best_iteration": model.info["best_iteration"]}


def load_run_model(run_dir: str) -> FraudModel:
    """The model ``train`` saved in ``run_dir``."""
    import xgboost

    info = _read_json(Path(run_dir, "model.json"))
    booster = xgboost.Booster()
    booster.load_model(str(Path(run_dir, "model.ubj")))
    prepare_for_scoring(booster)
    calibrator_path = Path(run_dir, "calibrator.pkl")
    calibrator = pickle.loads(calibrator_path.read_bytes()) if calibrator_path.exists() else None
    return FraudModel(booster=booster, feature_columns=info["feature_columns"],
                      thresholds=Thresholds(**info["thresholds"]), calibrator=calibrator, info=info)


def evaluate(run_dir: str) -> dict[str, float]:
    """Test-period metrics (``evaluation.json``) and the HTML report (``report.html``)."""
    from training.evaluate import evaluate_model
    from training.report import render_report

    config = load_config(run_dir)
    model = load_run_model(run_dir)
    test = load_training_set(run_dir).part("test")
    evaluation = evaluate_model(model, test, config.review_capacity_per_day)
    _write_json(Path(run_dir, "evaluation.json"), evaluation.to_dict())
    dataset = _read_json(Path(run_dir, "dataset.json"))
    context = {"run": Path(run_dir).name, "window": f"{config.start} .. {config.end}",
               "train": f"{config.start} .. {config.train_end}",
               "validation": f"{config.validation_start} .. {config.test_start}",
               "test": f"{config.test_start} .. {config.end}", "label cutoff": str(config.label_cutoff),
               "device": model.info.get("device"), "best iteration": model.info.get("best_iteration"),
               "data fingerprint": dataset["fingerprint"][:16]}
    Path(run_dir, "report.html").write_text(render_report(model, evaluation, "riskpipe fraud model", context))
    return evaluation.metrics


def register(settings: Settings, run_dir: str) -> str:
    """Save the run's model to the BentoML store with its lineage; returns the tag."""
    from training import model_store

    config = load_config(run_dir)
    dataset = _read_json(Path(run_dir, "dataset.json"))
    evaluation = _read_json(Path(run_dir, "evaluation.json"))
    metadata = {
        "run_id": Path(run_dir).name,
        "training_window": {"start": str(config.start), "end": str(config.end), "train_end": str(config.train_end),
                            "validation_start": str(config.validation_start), "test_start": str(config.test_start),
                            "label_cutoff": str(config.label_cutoff)},
        "data_fingerprint": dataset["fingerprint"],
        "feature_groups": registry_versions(settings, list(dataset["groups"])),
        "metrics": evaluation["metrics"],
        "scenarios": evaluation["scenarios"],
        "config": json.loads(config.model_dump_json()),
    }
    tag = model_store.save(settings, load_run_model(run_dir), metadata)
    _write_json(Path(run_dir, "registered.json"), {"tag": tag})
    log.info("registered model", extra={"tag": tag, "run_dir": run_dir})
    return tag


def gate(settings: Settings, run_dir: str, tag: str, force_promote: bool = False) -> dict[str, Any]:
    """Champion/challenger on the run's test period; promotes (moves the pointer) when it wins or is forced."""
    from training import model_store, promotion

    config = load_config(run_dir)
    test = load_training_set(run_dir).part("test")
    decision = promotion.gate(settings, model_store.load(settings, tag), test, config.promotion_margin,
                              config.min_lift)
    result: dict[str, Any] = {**decision.to_dict(), "tag": tag, "forced": False, "entry": None}
    if decision.promote or force_promote:
        reason = decision.reason if decision.promote else f"forced: {decision.reason}"
        result["entry"] = promotion.set_production(settings, tag, reason, "promote" if decision.promote else "force")
        result["forced"] = not decision.promote
        result["promote"] = True
    _write_json(Path(run_dir, "decision.json"), result)
    log.info("promotion gate", extra={"tag": tag, "promote": result["promote"], "reason": decision.reason})
    return result


def notify(settings: Settings, decision: dict[str, Any]) -> dict[str, Any] | None:
    """Publish ``model.promoted`` when the gate moved the pointer; nothing otherwise."""
    from training.notify import publish_promotion

    if not decision.get("promote") or not decision.get("entry"):
        return None
    return publish_promotion(settings, decision["entry"]).model_dump(mode="json")


@dataclass
class TrainingRun:
    run_dir: str
    tag: str
    metrics: dict[str, float]
    decision: dict[str, Any]


def run_training(settings: Settings, config: TrainingConfig, *, force_promote: bool = False,
                 publish: bool = True) -> TrainingRun:
    """All stages in one process (``riskpipe train``)."""
    run_dir = build(settings, config)
    validate(run_dir)
    train(run_dir)
    metrics = evaluate(run_dir)
    tag = register(settings, run_dir)
    decision = gate(settings, run_dir, tag, force_promote)
    if publish:
        try:
            notify(settings, decision)
        except Exception as exc:  # the pointer moved; serving can still pick it up from the file
            log.warning("could not publish the promotion event", extra={"error": str(exc)})
            decision["notify_error"] = str(exc)
    return TrainingRun(run_dir=run_dir, tag=tag, metrics=metrics, decision=decision)


__all__ = ["SPLITS", "TrainingRun", "build", "evaluate", "gate", "notify", "register", "run_training", "train",
           "validate"]

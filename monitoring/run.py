"""One monitoring run: drain the prediction log, then drift, skew and performance against thresholds.

``run_monitoring`` is what the hourly ``monitoring`` DAG, ``riskpipe monitor run`` and the demo call:

1. drain ``predictions.log`` into ``served_predictions`` (``monitoring.served``);
2. load the production model and its training reference (``monitoring.reference``);
3. take the served rows of the window ``[now - window, now)``; with the offline store open only
   for the reads (DuckDB's single writer is shared): skew recompute and label join;
4. Evidently drift + data quality (store closed: it is the slow part), performance by day;
5. alarms from the thresholds in settings; report files, ``summary.json``, a history row per
   figure (``monitoring_history``) and its plot, and ``<data_dir>/monitoring/latest.json``; report
   folders past ``monitoring_keep_reports`` are deleted (the history table keeps the figures).

Every check uses the rows the production model scored (the reference and the feature list are that
model's); rows of earlier models in the window are only counted in the summary. Which
alarms retrain: drift (features or predictions), skew and performance, as issue 9 asks; a data
quality alarm alone does not, since retraining on broken inputs would learn the breakage.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from features.offline.base import naive_utc
from riskpipe.settings import Settings

log = logging.getLogger(__name__)

RETRAIN_CHECKS = frozenset({"feature_drift", "prediction_drift", "skew", "performance"})


@dataclass
class Alarm:
    """One threshold crossed."""

    check: str  # "feature_drift" | "prediction_drift" | "skew" | "performance" | "data_quality"
    metric: str
    value: float
    threshold: float
    message: str


@dataclass
class MonitoringResult:
    run_id: str
    started_at: datetime
    report_dir: Path  # <settings.data_dir>/monitoring/reports/<run_id>/
    summary: dict[str, Any]  # also written as report_dir/summary.json
    alarms: list[Alarm] = field(default_factory=list)

    @property
    def should_retrain(self) -> bool:
        return any(a.check in RETRAIN_CHECKS for a in self.alarms)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly pointer data (latest.json, XCom)."""
        return {"run_id": self.run_id, "started_at": self.started_at.isoformat(), "report_dir": str(self.report_dir),
                "alarms": [asdict(a) for a in self.alarms], "should_retrain": self.should_retrain}


def monitoring_dir(settings: Settings) -> Path:
    return settings.data_dir / "monitoring"


def latest_result(settings: Settings) -> dict[str, Any] | None:
    """The newest run's pointer (run_id, started_at, report_dir, alarms, should_retrain), None before the first."""
    path = monitoring_dir(settings) / "latest.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError:
        log.warning("unreadable monitoring pointer; the next run rewrites it", extra={"path": str(path)})
        return None


def evaluate_alarms(summary: dict[str, Any]) -> list[Alarm]:
    """Thresholds crossed in a summary (pure: the unit tests feed it summaries)."""
    alarms: list[Alarm] = []
    drift = summary.get("drift") or {}
    if drift.get("enough_rows"):
        if drift["features_tested"] and drift["share_drifted"] >= drift["drift_share_threshold"]:
            alarms.append(Alarm("feature_drift", "share_drifted", drift["share_drifted"],
                                drift["drift_share_threshold"],
                                f"{len(drift['drifted_features'])}/{drift['features_tested']} features drifted "
                                f"({', '.join(drift['drifted_features'][:8])})"))
        prediction = drift.get("prediction_drift")
        if prediction and prediction["drifted"]:
            alarms.append(Alarm("prediction_drift", prediction["method"], prediction["value"], prediction["threshold"],
                                f"score distribution drifted (mean {drift['score_mean']:.4f} vs reference "
                                f"{drift['reference_score_mean']:.4f})"))
        quality = drift.get("data_quality") or {}
        for feature in quality.get("features_more_missing", []):
            served, ref = quality["missing_share"][feature], quality["reference_missing_share"][feature]
            alarms.append(Alarm("data_quality", f"missing_share:{feature}", served, ref + quality["max_increase"],
                                f"{feature} is missing in {served:.0%} of served requests vs {ref:.0%} in training: "
                                "check the online store / stream workers for its group"))
    skew = summary.get("skew") or {}
    for feature in skew.get("skewed_features", []):
        rate = skew["per_feature"][feature]["mismatch_rate"]
        alarms.append(Alarm("skew", f"mismatch_rate:{feature}", rate, skew["threshold"],
                            f"{feature}: served value differs from the offline point-in-time value in {rate:.0%} of "
                            f"sampled requests (mean abs diff {skew['per_feature'][feature]['mean_abs_diff']:.4g})"))
    perf = summary.get("performance") or {}
    if perf.get("judged") and perf.get("auc_pr") is not None:
        floor = (1 - perf["max_relative_drop"]) * perf["test_auc_pr"]
        if perf["auc_pr"] < floor:
            alarms.append(Alarm("performance", "auc_pr", perf["auc_pr"], floor,
                                f"AUC-PR {perf['auc_pr']:.4f} on served traffic is below {floor:.4f} "
                                f"(model test AUC-PR {perf['test_auc_pr']:.4f})"))
    return alarms


def _write_json(path: Path, value: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)  # readers (riskpipe monitor, the exporter) never see half a file


def prune_reports(settings: Settings) -> int:
    """Delete all but the newest ``monitoring_keep_reports`` report folders (run ids sort by start time)."""
    root = monitoring_dir(settings) / "reports"
    runs = sorted(p for p in root.iterdir() if p.is_dir()) if root.exists() else []
    old = runs[: max(0, len(runs) - settings.monitoring_keep_reports)]
    for path in old:
        shutil.rmtree(path, ignore_errors=True)
    return len(old)


def _drain(settings: Settings) -> dict[str, Any]:
    from monitoring.served import drain_predictions
    from training.notify import broker_reachable

    if not broker_reachable(settings.bootstrap_servers):
        return {"stored": 0, "error": f"no broker at {settings.bootstrap_servers}: analysed what was drained before"}
    return {"stored": drain_predictions(settings)}


def run_monitoring(settings: Settings, *, now: datetime | None = None,
                   window: timedelta | None = None) -> MonitoringResult:
    """Run every check over the served requests of ``[now - window, now)`` (defaults: wall clock, settings)."""
    from features.offline_access import offline_session
    from monitoring.drift import SCORE, drift_report
    from monitoring.history import history_rows, plot_history, read_history, record_history
    from monitoring.performance import labelled, performance
    from monitoring.reference import load_reference, production_model
    from monitoring.served import feature_frame, load_served
    from monitoring.skew import skew_check

    tag, model = production_model(settings)  # first: no model, no run (and no empty report folder)
    started_at = datetime.now(UTC)
    end = naive_utc(now or started_at)
    window = window or timedelta(hours=settings.monitoring_window_h)
    run_id = f"{started_at:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    report_dir = monitoring_dir(settings) / "reports" / run_id
    report_dir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:  # seconds per stage in the summary: where an hourly run spends its time
        nonlocal clock
        timings[stage] = round(time.perf_counter() - clock, 3)
        clock = time.perf_counter()

    summary: dict[str, Any] = {"run_id": run_id, "window": {"start": str(end - window), "end": str(end)},
                               "drain": _drain(settings), "timings_s": timings}
    lap("drain")
    reference = load_reference(settings, tag, model)
    summary["model"] = {"tag": tag, "run_id": reference.run_id, "test_auc_pr": reference.test_auc_pr,
                        "reference_problem": reference.problem}
    lap("reference")

    with offline_session(settings) as store:
        served = load_served(store, end - window, end)
        summary["served_rows"] = len(served)
        ours = served[served["model_tag"] == tag].reset_index(drop=True)
        summary["rows_of_other_models"] = len(served) - len(ours)
        summary["skew"] = skew_check(store, ours, model.feature_columns, sample=settings.monitoring_skew_sample,
                                     max_mismatch_rate=settings.monitoring_skew_rate, png_path=report_dir / "skew.png")
        joined = labelled(store, ours, end - window, end)
    lap("skew_and_labels")

    if reference.frame is not None and len(ours):
        current = feature_frame(ours).reindex(columns=model.feature_columns)
        current[SCORE] = ours["score"].to_numpy()
        summary["drift"] = drift_report(current, reference.frame, model.feature_columns,
                                        drift_share=settings.monitoring_drift_share,
                                        min_rows=settings.monitoring_min_rows,
                                        max_missing_increase=settings.monitoring_missing_increase,
                                        html_path=report_dir / "drift.html")
    else:
        summary["drift"] = {"rows": len(ours), "enough_rows": False,
                            "skipped": reference.problem or "no served requests of the production model in the window"}
    lap("drift")
    summary["performance"] = performance(joined, k=settings.review_capacity_per_day, test_auc_pr=reference.test_auc_pr,
                                         min_positives=settings.monitoring_min_positives,
                                         max_drop=settings.monitoring_auc_pr_drop,
                                         png_path=report_dir / "performance.png")
    lap("performance")
    alarms = evaluate_alarms(summary)
    result = MonitoringResult(run_id, started_at, report_dir, summary, alarms)
    summary["alarms"] = [asdict(a) for a in alarms]
    summary["should_retrain"] = result.should_retrain
    _write_json(report_dir / "summary.json", summary)

    with offline_session(settings) as store:
        record_history(store, history_rows(run_id, started_at, summary))
        history = read_history(store)
    if len(history):
        plot_history(history, report_dir / "history.png")
    _write_json(monitoring_dir(settings) / "latest.json", result.to_dict())
    prune_reports(settings)
    log.info("monitoring run finished", extra={"run_id": run_id, "alarms": len(alarms),
                                               "should_retrain": result.should_retrain, "report_dir": str(report_dir)})
    return result

"""Feature drift, prediction drift and data quality of served requests against the training reference.

One Evidently 0.7 ``Report`` (``DataDriftPreset``) over the model's features and its score:
Evidently picks the test per column (K-S / chi-square p-values on small samples, Wasserstein /
Jensen-Shannon distances on large ones) and we read each column's value,
method and threshold back from ``snapshot.dict()``. The model score is reported as prediction
drift and kept out of the drifted-feature share. Data quality compares each feature's null share
served vs reference (a feature that stops arriving online shows up here before it shows up as drift);
it is computed directly rather than with ``DataSummaryPreset``, which doubles the run time on two
cores for statistics the alarm does not use.

Too few served rows (``monitoring_min_rows``) still produce the report, but raise no alarm: the
summary says ``enough_rows: false`` so nobody mistakes silence for health.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

log = logging.getLogger(__name__)

SCORE = "score"


@dataclass(frozen=True)
class ColumnDrift:
    column: str
    method: str
    value: float
    threshold: float
    drifted: bool


def is_drifted(method: str, value: float, threshold: float) -> bool:
    """Evidently's rule: p-value tests drift when the p-value is below the threshold, distances at or above it."""
    if math.isnan(value):
        return False
    return value < threshold if "p_value" in method else value >= threshold


def parse_value_drifts(snapshot: dict[str, Any]) -> list[ColumnDrift]:
    """Every ``ValueDrift`` metric of a snapshot dict as (column, method, value, threshold, drifted)."""
    out = []
    for metric in snapshot.get("metrics", []):
        config = metric.get("config") or {}
        if not str(config.get("type", "")).endswith("ValueDrift"):
            continue
        method, threshold, value = str(config["method"]), float(config["threshold"]), float(metric["value"])
        out.append(ColumnDrift(str(config["column"]), method, value, threshold, is_drifted(method, value, threshold)))
    return out


def missing_shares(frame: pd.DataFrame, columns: list[str]) -> dict[str, float]:
    return {c: float(frame[c].isna().mean()) if len(frame) else 0.0 for c in columns}


def data_quality(current: pd.DataFrame, reference: pd.DataFrame, columns: list[str],
                 max_increase: float) -> dict[str, Any]:
    """Per-feature null share served vs reference; features whose share rose by more than ``max_increase``."""
    served, ref = missing_shares(current, columns), missing_shares(reference, columns)
    worse = sorted(c for c in columns if served[c] - ref[c] > max_increase)
    return {"missing_share": served, "reference_missing_share": ref, "features_more_missing": worse,
            "max_increase": max_increase}


def drift_report(current: pd.DataFrame, reference: pd.DataFrame, columns: list[str], *, drift_share: float,
                 min_rows: int, max_missing_increase: float, html_path: Path | None = None) -> dict[str, Any]:
    """Run Evidently on ``columns`` + score; returns the drift part of the monitoring summary."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    # A column that is entirely null on either side cannot be tested; it is reported by data quality instead.
    testable = [c for c in columns if current[c].notna().any() and reference[c].notna().any()]
    numeric = [*testable, SCORE]
    definition = DataDefinition(numerical_columns=numeric)
    report = Report([DataDriftPreset(columns=numeric, drift_share=drift_share)])
    snapshot = report.run(Dataset.from_pandas(current[numeric].astype(float), data_definition=definition),
                          Dataset.from_pandas(reference[numeric].astype(float), data_definition=definition))
    if html_path is not None:
        snapshot.save_html(str(html_path))
    drifts = {d.column: d for d in parse_value_drifts(snapshot.dict())}
    features = [drifts[c] for c in testable if c in drifts]
    drifted = sorted(d.column for d in features if d.drifted)
    prediction = drifts.get(SCORE)
    return {
        "rows": len(current), "reference_rows": len(reference), "enough_rows": len(current) >= min_rows,
        "min_rows": min_rows, "features_tested": len(features),
        "untestable_features": sorted(set(columns) - set(testable)),
        "drifted_features": drifted,
        "share_drifted": len(drifted) / len(features) if features else 0.0, "drift_share_threshold": drift_share,
        "per_feature": {d.column: {"method": d.method, "value": d.value, "threshold": d.threshold,
                                   "drifted": d.drifted} for d in features},
        "prediction_drift_score": prediction.value if prediction else None,
        "prediction_drift": {"method": prediction.method, "value": prediction.value, "threshold": prediction.threshold,
                             "drifted": prediction.drifted} if prediction else None,
        "score_mean": float(current[SCORE].mean()) if len(current) else None,
        "reference_score_mean": float(reference[SCORE].mean()),
        "data_quality": data_quality(current, reference, columns, max_missing_increase),
    }

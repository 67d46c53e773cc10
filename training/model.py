"""The trained artefact: booster + the exact feature order + optional calibration + decision thresholds.

Serving, the champion re-scoring and the evaluation all score through ``FraudModel.predict``,
so the feature order, the missing-value handling and the calibration are applied one way only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from riskpipe.errors import UsageError

DECISIONS = ("allow", "review", "block")


def to_matrix(frame: pd.DataFrame, feature_columns: list[str]) -> np.ndarray:
    """Features as float32 in model order; nulls (and nullable booleans) become NaN = XGBoost's missing.

    One vectorized conversion in the common case (a single serving row must not pay per-column
    pandas overhead); a column holding something non-numeric falls back to a per-column coercion.
    """
    missing = [c for c in feature_columns if c not in frame.columns]
    if missing:
        raise UsageError(f"frame lacks feature column(s) {missing[:10]}{' ...' if len(missing) > 10 else ''}")
    block = frame[feature_columns]
    try:
        return block.to_numpy(dtype=np.float32, na_value=np.nan)
    except (TypeError, ValueError):
        return np.column_stack([pd.to_numeric(block[c].astype(object).where(block[c].notna(), np.nan),
                                              errors="coerce").to_numpy(dtype=np.float32)
                                for c in feature_columns]) if feature_columns else np.empty((len(frame), 0))


def prepare_for_scoring(booster: Any) -> Any:
    """CPU scoring with few threads: a GPU-trained model must load on CPU boxes, and single-row
    predictions are 100x slower when OpenMP threads contend on a busy machine (measured 40 ms vs 0.4 ms)."""
    from training.device import default_threads

    booster.set_param({"device": "cpu", "nthread": default_threads()})
    return booster


@dataclass
class Thresholds:
    """Score cut-offs for serving: ``review`` at ``review_fpr``, ``block`` at ``block_fpr`` (validation FPR)."""

    review: float
    block: float
    review_fpr: float
    block_fpr: float

    def decide(self, scores: Any) -> np.ndarray:
        scores = np.asarray(scores, dtype=float)
        return np.where(scores >= self.block, "block", np.where(scores >= self.review, "review", "allow"))

    def to_dict(self) -> dict[str, float]:
        return {"review": self.review, "block": self.block, "review_fpr": self.review_fpr, "block_fpr": self.block_fpr}


@dataclass
class FraudModel:
    """What the model store holds for one model (the booster is saved natively, the rest as custom objects)."""

    booster: Any  # xgboost.Booster
    feature_columns: list[str]
    thresholds: Thresholds | None = None
    calibrator: Any = None  # sklearn IsotonicRegression fitted on validation scores, or None
    info: dict[str, Any] = field(default_factory=dict)

    def raw_scores(self, frame: pd.DataFrame) -> np.ndarray:
        return self.predict_matrix(to_matrix(frame, self.feature_columns), calibrated=False)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Fraud probability per row (calibrated when a calibrator was fitted)."""
        return self.predict_matrix(to_matrix(frame, self.feature_columns))

    def predict_matrix(self, matrix: np.ndarray, *, calibrated: bool = True) -> np.ndarray:
        """Scores of a float matrix already in ``feature_columns`` order: serving's per-request path,
        which skips building a DataFrame (that alone costs more than the prediction)."""
        scores = np.asarray(self.booster.inplace_predict(matrix, validate_features=False), dtype=float)
        if calibrated and self.calibrator is not None:
            scores = np.asarray(self.calibrator.predict(scores), dtype=float)
        return scores

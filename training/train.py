"""Fit XGBoost on the training period, early-stopped on validation AUC-PR, thresholds from validation.

* ``tree_method="hist"`` on the device ``training.device.resolve_device`` picks.
* Imbalance: ``scale_pos_weight = negatives / positives`` of the training period (fraud is
  ~1% of transactions; unweighted trees learn "always legit").
* Early stopping watches AUC-PR on the validation period (AUC-ROC saturates on rare classes).
* Seeded (``seed`` drives row and column subsampling), so a rerun on the same frame is repeatable.
* Thresholds for serving are chosen on validation scores (FPR among validation negatives), never
  on the test period, which stays untouched for the evaluation and the promotion gate.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import pandas as pd

from riskpipe.errors import UsageError
from training.config import TrainingConfig
from training.dataset import LABEL, TrainingSet
from training.device import default_threads, resolve_device
from training.model import FraudModel, Thresholds, prepare_for_scoring, to_matrix

log = logging.getLogger(__name__)


def threshold_at_fpr(scores: np.ndarray, labels: np.ndarray, fpr: float) -> float:
    """Smallest score whose share of negatives scoring at or above it is <= ``fpr``.

    Computed on the negatives' score distribution: with ``n`` negatives the reachable FPRs are
    multiples of 1/n, so the threshold sits just above the ``floor(fpr * n)``-th highest negative.
    """
    negatives = np.sort(np.asarray(scores, dtype=float)[np.asarray(labels) == 0])[::-1]
    if negatives.size == 0:
        raise UsageError("no negatives in the validation period: cannot choose thresholds")
    allowed = int(np.floor(fpr * negatives.size))  # negatives allowed at or above the threshold
    if allowed >= negatives.size:
        return float(negatives[-1])
    return float(np.nextafter(negatives[allowed], np.inf))


def _check_parts(train: pd.DataFrame, valid: pd.DataFrame) -> None:
    for name, part in (("train", train), ("validation", valid)):
        positives = int(part[LABEL].sum())
        if positives == 0 or positives == len(part):
            raise UsageError(f"{name} period has {positives} positive(s) in {len(part)} rows: "
                             "both classes are needed; widen the window or move the split")


def xgb_params(config: TrainingConfig, device: str, scale_pos_weight: float) -> dict[str, Any]:
    return {
        "objective": "binary:logistic",
        "eval_metric": ["auc", "aucpr"],  # the last one drives early stopping
        "tree_method": "hist",
        "device": device,
        "max_depth": config.max_depth,
        "learning_rate": config.learning_rate,
        "subsample": 0.9,
        "colsample_bytree": 0.8,
        "min_child_weight": 1.0,
        "scale_pos_weight": scale_pos_weight,
        "seed": config.seed,
        "nthread": config.nthread or default_threads(),
        "verbosity": 0,
    }


def train_model(training_set: TrainingSet, config: TrainingConfig) -> FraudModel:
    """The fitted model, with thresholds and (optionally) calibration from the validation period."""
    import xgboost

    train, valid = training_set.part("train"), training_set.part("validation")
    _check_parts(train, valid)
    features = training_set.feature_columns
    y_train, y_valid = train[LABEL].to_numpy(), valid[LABEL].to_numpy()
    positives = float(y_train.sum())
    scale_pos_weight = (len(y_train) - positives) / positives
    device = resolve_device(config.device)
    params = xgb_params(config, device, scale_pos_weight)
    dtrain = xgboost.DMatrix(to_matrix(train, features), label=y_train, feature_names=features)
    dvalid = xgboost.DMatrix(to_matrix(valid, features), label=y_valid, feature_names=features)
    history: dict[str, dict[str, list[float]]] = {}
    started = time.perf_counter()
    booster = xgboost.train(params, dtrain, num_boost_round=config.num_boost_round,
                            evals=[(dtrain, "train"), (dvalid, "validation")],
                            early_stopping_rounds=config.early_stopping_rounds, evals_result=history,
                            verbose_eval=False)
    seconds = time.perf_counter() - started
    best = int(booster.best_iteration)
    booster = booster[: best + 1]  # keep only the rounds early stopping chose
    prepare_for_scoring(booster)
    model = FraudModel(booster=booster, feature_columns=list(features))
    raw_valid = model.raw_scores(valid)
    if config.calibrate:
        from sklearn.isotonic import IsotonicRegression

        model.calibrator = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(raw_valid, y_valid)
    valid_scores = model.predict(valid)
    model.thresholds = Thresholds(
        review=threshold_at_fpr(valid_scores, y_valid, config.review_fpr),
        block=threshold_at_fpr(valid_scores, y_valid, config.block_fpr),
        review_fpr=config.review_fpr, block_fpr=config.block_fpr,
    )
    model.info = {
        "device": device, "requested_device": config.device, "best_iteration": best,
        "num_boost_round": config.num_boost_round, "scale_pos_weight": scale_pos_weight,
        "train_rows": len(train), "train_positives": int(positives), "validation_rows": len(valid),
        "validation_positives": int(y_valid.sum()), "train_seconds": seconds,
        "validation_aucpr": float(history["validation"]["aucpr"][best]), "params": params,
    }
    log.info("model trained", extra={k: model.info[k] for k in ("device", "best_iteration", "validation_aucpr")})
    return model

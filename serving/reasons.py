"""Reason codes: the features that pushed a score up the most (XGBoost's exact TreeSHAP contributions).

``pred_contribs`` needs a DMatrix (built once per call, not per row). It is built with ONE thread:
with the default (every core) the OpenMP threads spin, and on a busy 2-core box building a one-row
DMatrix was measured at ~20 ms of CPU, more than everything else a request does together.
contributions are in margin space and sum with the bias to the raw score, which is what an analyst
needs to see *why*, even when the reported score is calibrated.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from serving.schemas import ReasonCode


def top_reasons(booster: Any, matrix: np.ndarray, feature_names: list[str], k: int) -> list[list[ReasonCode]]:
    """Per row, up to ``k`` features with the largest positive contribution (towards fraud), largest first."""
    if k <= 0 or matrix.shape[0] == 0:
        return [[] for _ in range(matrix.shape[0])]
    import xgboost

    contribs = np.asarray(booster.predict(xgboost.DMatrix(matrix, missing=np.nan, nthread=1), pred_contribs=True,
                                          validate_features=False))[:, : len(feature_names)]
    out: list[list[ReasonCode]] = []
    for row, values in zip(contribs, matrix, strict=True):
        order = np.argsort(-row)[:k]
        out.append([ReasonCode(feature=feature_names[j], contribution=float(row[j]),
                               value=None if math.isnan(values[j]) else float(values[j]))
                    for j in order if row[j] > 0])
    return out

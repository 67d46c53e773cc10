"""Request -> feature row -> score -> response, as plain code (the HTTP layer only calls ``Scorer``).

The feature row is assembled exactly like a training row (``training.dataset``): request fields used
as-is (``amount``), online group features, then the on-demand features computed by the *same*
functions training used (``features.on_demand``). Booleans become 1.0/0.0 and unknown values NaN,
the missing value XGBoost learned a direction for; that NaN is also the "default" a degraded
request gets. Scores go through ``FraudModel.predict`` (feature order + calibration in one place).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

from features.on_demand import ON_DEMAND_FEATURES, compute_on_demand
from serving.metrics import ServingMetrics
from serving.model_holder import LoadedModel, ModelHolder
from serving.online_features import OnlineFeatureFetcher, OnlineLookup
from serving.prediction_log import PredictionLogger, prediction_record
from serving.reasons import top_reasons
from serving.schemas import ScoreRequest, ScoreResponse

log = logging.getLogger(__name__)

ENTITY_FIELDS = ("account_id", "device_id", "ip", "counterparty_id", "payment_method_id")


def _number(value: Any) -> float:
    if value is None:
        return math.nan
    try:
        number = float(value)
    except (TypeError, ValueError):  # a string feature: the model never uses those
        return math.nan
    return number


def feature_row(request: ScoreRequest, lookup: OnlineLookup, now: datetime) -> dict[str, Any]:
    """Every value a model may ask for: request fields, online features and on-demand features."""
    inputs: dict[str, Any] = {**lookup.values, "amount": request.amount, "txn_type": request.txn_type,
                              "event_time": request.event_time or now,
                              "last_password_change_time": request.last_password_change_time,
                              "device_first_seen_time": request.device_first_seen_time}
    usable = tuple(f for f in ON_DEMAND_FEATURES if all(i in inputs for i in f.inputs))
    return {**inputs, **compute_on_demand(inputs, usable)}


def to_matrix(rows: Sequence[dict[str, Any]], columns: list[str]) -> tuple[np.ndarray, list[int]]:
    """Rows in model order as float32 (NaN = missing), and how many model features each row misses."""
    matrix = np.array([[_number(row.get(c)) for c in columns] for row in rows], dtype=np.float32)
    matrix = matrix.reshape(len(rows), len(columns))
    return matrix, np.isnan(matrix).sum(axis=1).astype(int).tolist()


class Scorer:
    def __init__(self, models: ModelHolder, features: OnlineFeatureFetcher, *,
                 prediction_log: PredictionLogger | None = None, metrics: ServingMetrics | None = None,
                 reason_codes: int = 3):
        self.models = models
        self.features = features
        self.prediction_log = prediction_log
        self.metrics = metrics
        self.reason_codes = reason_codes

    def score(self, request: ScoreRequest) -> ScoreResponse:
        return self.score_batch([request])[1][0]

    def score_batch(self, requests: Sequence[ScoreRequest]) -> tuple[LoadedModel, list[ScoreResponse]]:
        """Score many requests with ONE model (read once: a hot swap cannot split a batch)."""
        loaded = self.models.require()
        model = loaded.model
        now = datetime.now(UTC)
        started = time.perf_counter()
        lookups = self.features.fetch([{k: getattr(r, k) for k in ENTITY_FIELDS} for r in requests], now)
        fetched = time.perf_counter()
        rows = [feature_row(r, lk, now) for r, lk in zip(requests, lookups, strict=True)]
        matrix, missing = to_matrix(rows, model.feature_columns)
        scores = model.predict_matrix(matrix)
        decisions = model.thresholds.decide(scores) if model.thresholds else np.full(len(rows), "allow")
        reasons = top_reasons(model.booster, matrix, model.feature_columns, self.reason_codes)
        done = time.perf_counter()
        responses = [
            ScoreResponse(score=float(s), decision=str(d), model_version=loaded.version, reasons=rc,
                          freshness_s=lk.freshness_s, missing_features=m, degraded=lk.degraded,
                          event_id=r.event_id)
            for r, s, d, rc, lk, m in zip(requests, scores, decisions, reasons, lookups, missing, strict=True)
        ]
        self._observe(fetched - started, done - fetched, responses)
        self._log(loaded, requests, matrix, responses, now)
        return loaded, responses

    def _observe(self, fetch_s: float, model_s: float, responses: list[ScoreResponse]) -> None:
        if self.metrics is None:
            return
        self.metrics.feature_fetch.observe(fetch_s)
        self.metrics.model_latency.observe(model_s)
        for r in responses:
            self.metrics.scored.labels(decision=r.decision).inc()
            if r.degraded:
                self.metrics.degraded.inc()
            if r.missing_features:
                self.metrics.missing.inc(r.missing_features)

    def _log(self, loaded: LoadedModel, requests: Sequence[ScoreRequest], matrix: np.ndarray,
             responses: list[ScoreResponse], now: datetime) -> None:
        if self.prediction_log is None:
            return
        columns = loaded.model.feature_columns
        for request, values, response in zip(requests, matrix, responses, strict=True):
            record = prediction_record(served_at=now, event_id=request.event_id, account_id=request.account_id,
                                       event_time=request.event_time or now, model_tag=loaded.tag,
                                       score=response.score, decision=response.decision,
                                       degraded=response.degraded, columns=columns, values=values)
            if not self.prediction_log.log(request.account_id, record) and self.metrics is not None:
                self.metrics.log_dropped.inc()

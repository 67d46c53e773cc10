"""Wires the scorer's parts from settings and owns their background threads (reload, events, metrics, log)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from riskpipe.settings import Settings
from serving.metrics import ServingMetrics
from serving.model_holder import ModelHolder
from serving.online_features import OnlineFeatureFetcher
from serving.prediction_log import PredictionLogger
from serving.promotion_events import PromotionListener
from serving.scorer import Scorer

log = logging.getLogger(__name__)


@dataclass
class ServingRuntime:
    settings: Settings
    scorer: Scorer
    metrics: ServingMetrics
    promotions: PromotionListener | None = None

    @classmethod
    def from_settings(cls, settings: Settings, *, metrics: ServingMetrics | None = None,
                      prediction_log: bool = True) -> ServingRuntime:
        metrics = metrics or ServingMetrics()
        models = ModelHolder(settings)
        scorer = Scorer(models, OnlineFeatureFetcher.from_settings(settings),
                        prediction_log=PredictionLogger.from_settings(settings) if prediction_log else None,
                        metrics=metrics, reason_codes=settings.serving_reason_codes)
        promotions = (PromotionListener.from_settings(settings, lambda: models.refresh("event"))
                      if settings.serving_alerts_reload else None)
        return cls(settings, scorer, metrics, promotions)

    def start(self) -> None:
        self.scorer.models.start()
        if self.promotions is not None:
            self.promotions.start()
        self.metrics.start_sampler()
        current = self.scorer.models.current
        log.info("scoring service ready", extra={"model": current.tag if current else None,
                                                 "device": self.scorer.models.device})

    def close(self) -> None:
        self.scorer.models.stop()
        if self.promotions is not None:
            self.promotions.stop()
        self.metrics.stop()
        if self.scorer.prediction_log is not None:
            left = self.scorer.prediction_log.close()
            if left:
                log.warning("prediction-log records unsent at shutdown", extra={"unsent": left})

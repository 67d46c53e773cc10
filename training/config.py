"""What one training run does: the data window, the split, the model knobs and the gate.

One pydantic object, so a bad CLI flag or Airflow Params value fails with a message naming
the field, and the whole configuration is saved with the model (a model must say how it was
made). Times are naive UTC (the storage convention); aware inputs are converted.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from riskpipe.errors import UsageError
from riskpipe.settings import Settings

Device = Literal["auto", "cpu", "cuda"]


def naive_utc(value: datetime) -> datetime:
    """Aware -> naive UTC; naive values are already UTC by convention."""
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo is not None else value


class TrainingConfig(BaseModel):
    """A training run over transactions with ``start <= event_time < end``.

    Labels: the cutoff is ``end`` (the moment the training set is taken). A fraud label whose
    ``label_time`` is after the cutoff does not exist yet, so its transaction is a *negative*:
    exactly what a job running at ``end`` would see. Excluding those transactions instead is
    impossible without knowing which they are (that would be leakage), and excluding a whole
    recent period only hides the problem; the gap below keeps training labels mature relative
    to the evaluation periods instead.

    Split, in time order: train | gap | validation | test. The test period is the last
    ``test_fraction`` of the window, validation the ``validation_fraction`` before it, and the
    gap (at least the typical label delay) separates training from validation so that fraud
    incidents running across the boundary and immature labels do not flatter the validation.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: datetime
    end: datetime
    gap: timedelta = Field(timedelta(hours=48), description="Between train and validation; >= the label delay.")
    validation_fraction: float = Field(0.15, gt=0.0, lt=0.5)
    test_fraction: float = Field(0.2, gt=0.0, lt=0.5)
    feature_groups: tuple[str, ...] | None = Field(
        None, description="Feature groups to join (default: every group of the catalog).")

    device: Device = "auto"
    seed: int = Field(7, ge=0)
    num_boost_round: int = Field(400, ge=1, le=20_000)
    early_stopping_rounds: int = Field(30, ge=1)
    max_depth: int = Field(6, ge=1, le=16)
    learning_rate: float = Field(0.1, gt=0.0, le=1.0)
    nthread: int | None = Field(None, ge=1, le=256, description="XGBoost CPU threads; default half the cores.")
    calibrate: bool = Field(False, description="Fit isotonic calibration on the validation period.")
    shuffle_labels: bool = Field(False, description="Permute training labels: a known-bad model for gate tests.")

    review_fpr: float = Field(0.01, gt=0.0, lt=1.0, description="Score above which a transaction is reviewed.")
    block_fpr: float = Field(0.001, gt=0.0, lt=1.0, description="Score above which a transaction is blocked.")
    review_capacity_per_day: int = Field(20, ge=1, description="k of precision@k (accounts reviewed per day).")

    min_label_rate: float = Field(0.0005, ge=0.0, le=1.0, description="Validation gate: fewer positives = broken.")
    max_label_rate: float = Field(0.2, ge=0.0, le=1.0, description="Validation gate: more positives = broken.")
    max_null_rate: float = Field(0.98, ge=0.0, le=1.0, description="Validation gate: a feature nulls at most this.")

    promotion_margin: float = Field(0.01, ge=0.0, le=1.0, description="Test AUC-PR gain needed over the champion.")
    min_lift: float = Field(3.0, ge=1.0, description="Test AUC-PR must be >= this x the test positive rate.")

    _start_utc = field_validator("start", "end")(lambda v: naive_utc(v))

    @model_validator(mode="after")
    def _check(self) -> TrainingConfig:
        if self.start >= self.end:
            raise ValueError(f"start {self.start} must be before end {self.end}")
        if self.block_fpr > self.review_fpr:
            raise ValueError("block_fpr must not exceed review_fpr (blocking is the stricter decision)")
        if self.min_label_rate > self.max_label_rate:
            raise ValueError("min_label_rate exceeds max_label_rate")
        if self.train_end <= self.start:
            raise ValueError(f"the window {self.start}..{self.end} leaves no training period: widen it, "
                             f"or shrink gap ({self.gap}) / validation_fraction / test_fraction")
        return self

    # -- split boundaries -------------------------------------------------------------------------
    @property
    def span(self) -> timedelta:
        return self.end - self.start

    @property
    def test_start(self) -> datetime:
        return self.end - self.span * self.test_fraction

    @property
    def validation_start(self) -> datetime:
        return self.test_start - self.span * self.validation_fraction

    @property
    def train_end(self) -> datetime:
        return self.validation_start - self.gap

    @property
    def label_cutoff(self) -> datetime:
        """Labels known at training time: ``label_time <= label_cutoff``."""
        return self.end

    @classmethod
    def from_settings(cls, settings: Settings, **values: object) -> TrainingConfig:
        """Defaults from the settings (device, margin, review capacity), overridden by ``values``."""
        base: dict[str, object] = {
            "device": settings.training_device,
            "promotion_margin": settings.promotion_margin,
            "review_capacity_per_day": settings.review_capacity_per_day,
        }
        base.update({k: v for k, v in values.items() if v is not None})
        return cls.model_validate(base)


def window_ending(end: datetime | None, days: float) -> tuple[datetime, datetime]:
    """``(end - days, end)``; ``end`` defaults to the current hour (so reruns within it agree)."""
    if days <= 0:
        raise UsageError(f"training window days must be positive, got {days}")
    end = naive_utc(end) if end is not None else datetime.now(UTC).replace(
        minute=0, second=0, microsecond=0, tzinfo=None)
    return end - timedelta(days=days), end

"""The scoring API's request and response shapes (pydantic: validation and the OpenAPI schema in one place).

Field names follow ``events.contracts.Transaction`` so a caller can send the transaction it is
about to execute; limits match the contracts (amount bounds, known currencies, ISO countries), so
a request the pipeline would dead-letter is refused with a 422 naming the field, not scored.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from events.contracts import MAX_AMOUNT, Country, Id, as_utc, known_currency

TxnType = Literal["card_payment", "p2p_transfer", "deposit", "withdrawal"]
Decision = Literal["allow", "review", "block"]


class ScoreRequest(BaseModel):
    """One transaction to score. Optional history fields feed on-demand features when the caller knows them."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    account_id: Id
    txn_type: TxnType = Field(description="Event type of the transaction.")
    amount: float = Field(gt=0, le=MAX_AMOUNT)
    currency: str
    counterparty_id: Id | None = None
    payment_method_id: Id | None = None
    device_id: Id
    ip: Id
    country: Country
    event_time: datetime | None = Field(None, description="Transaction time (timezone required); default: now.")
    event_id: Id | None = Field(None, description="Caller's id, echoed in the prediction log for joins with labels.")
    last_password_change_time: datetime | None = None
    device_first_seen_time: datetime | None = None

    _currency = field_validator("currency")(lambda v: known_currency(v))

    @field_validator("event_time", "last_password_change_time", "device_first_seen_time")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return None if value is None else as_utc(value)

    def time(self) -> datetime:
        return self.event_time or datetime.now(UTC)


class ReasonCode(BaseModel):
    """One feature's push on the score (SHAP value in margin space; positive = towards fraud)."""

    feature: str
    value: float | None
    contribution: float


class ScoreResponse(BaseModel):
    score: float
    decision: Decision
    model_version: str
    reasons: list[ReasonCode]
    freshness_s: dict[str, float | None] = Field(
        description="Per feature group: seconds since the event time its values describe (None: no value).")
    missing_features: int
    degraded: bool = Field(description="True when the online store could not answer: defaults were used.")
    event_id: str | None = None


class BatchScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    requests: Annotated[list[ScoreRequest], Field(min_length=1)]


class BatchScoreResponse(BaseModel):
    model_version: str
    results: list[ScoreResponse]

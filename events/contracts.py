"""Event contracts: the shape of everything that enters the pipeline.

Every event carries a schema version, an ``event_id``, the entity keys it touches and a
UTC event time. The same field names are the column names of the raw offline tables
(``events_transactions``, ...) and the lake's Parquet files, so the stream engine, the
batch engine and the simulator agree on one vocabulary.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

SCHEMA_VERSION = 1

# ISO 4217 codes the platform settles in; anything else is rejected to the DLQ.
CURRENCIES: frozenset[str] = frozenset(
    {"USD", "EUR", "GBP", "JPY", "AUD", "CAD", "CHF", "BRL", "TRY", "NGN", "INR", "KRW", "USDT", "BTC", "ETH"}
)
# An amount above this (in any currency) is treated as corrupt input, not as a big payment.
MAX_AMOUNT = 10_000_000.0

def as_utc(value: datetime) -> datetime:
    """Naive timestamps are ambiguous across producers: only aware ones are accepted, kept in UTC."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("timestamp must carry a timezone (UTC)")
    return value.astimezone(UTC)


def known_currency(value: str) -> str:
    """Settlement currencies only: shared by the event contract and the scoring request."""
    if value not in CURRENCIES:
        raise ValueError(f"unknown currency {value!r}; expected one of {sorted(CURRENCIES)}")
    return value


Id = Annotated[str, Field(min_length=1, max_length=128)]
Country = Annotated[str, Field(pattern=r"^[A-Z]{2}$")]
Channel = Literal["web", "ios", "android", "api"]


class Event(BaseModel):
    """Fields every event has; subclasses name their topic and offline table."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    topic: ClassVar[str]
    table: ClassVar[str]

    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: Id
    event_time: datetime
    account_id: Id

    _event_time_utc = field_validator("event_time")(lambda v: as_utc(v))

    @property
    def key(self) -> str:
        """Kafka key: account id, so one account's events stay ordered on one partition."""
        return self.account_id

    @property
    def record_timestamp_ms(self) -> int:
        """Kafka record timestamp: the event time (Kafka Streams' convention), by which the compute worker
        orders partitions (``streaming.event_source``); 0 means "when produced"."""
        return int(self.event_time.timestamp() * 1000)


class Transaction(Event):
    topic: ClassVar[str] = "events.transactions"
    table: ClassVar[str] = "events_transactions"

    txn_type: Literal["card_payment", "p2p_transfer", "deposit", "withdrawal"]
    amount: float = Field(gt=0, le=MAX_AMOUNT)
    currency: str
    counterparty_id: Id | None = None
    payment_method_id: Id | None = None
    withdrawal_address: Id | None = None
    device_id: Id
    ip: Id
    country: Country
    channel: Channel

    _currency = field_validator("currency")(lambda v: known_currency(v))


class Login(Event):
    topic: ClassVar[str] = "events.logins"
    table: ClassVar[str] = "events_logins"

    success: bool
    device_id: Id
    ip: Id
    country: Country
    two_fa_used: bool
    channel: Channel


class AccountChange(Event):
    topic: ClassVar[str] = "events.account_changes"
    table: ClassVar[str] = "events_account_changes"

    change_type: Literal["password", "2fa", "email", "withdrawal_address"]
    device_id: Id
    ip: Id
    country: Country
    # For withdrawal_address changes: the new address (lets features spot "new address, then drain").
    new_withdrawal_address: Id | None = None


FraudType = Literal["ato", "p2p_scam", "stolen_payment"]


class FraudLabel(Event):
    """A confirmed fraud verdict on one earlier event; arrives late, like a chargeback.

    ``event_id`` is the labelled event's id, ``event_time`` that event's time, and
    ``label_time`` when the verdict became known (training may use it only after then).
    """

    topic: ClassVar[str] = "labels.fraud"
    table: ClassVar[str] = "labels"

    fraud_type: FraudType
    label_time: datetime

    _label_time_utc = field_validator("label_time")(lambda v: as_utc(v))

    @property
    def record_timestamp_ms(self) -> int:
        """When produced: ``event_time`` is the labelled event's, often weeks before the verdict (a record
        stamped that old would fall out of Kafka's time-based retention at once)."""
        return 0


EVENT_TYPES: tuple[type[Event], ...] = (Transaction, Login, AccountChange)
MODEL_BY_TOPIC: dict[str, type[Event]] = {m.topic: m for m in (*EVENT_TYPES, FraudLabel)}

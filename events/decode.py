"""Turn the bytes of one Kafka record into a validated event, or a reason to dead-letter it.

``decode`` is pure (no I/O, no clock unless ``now`` is omitted) so stream workers, the DLQ
tests and the replay loader share one definition of "valid". It never raises for bad
input: a worker must keep consuming whatever a producer sends, so every failure becomes a
``Rejection`` with a stable, machine-readable ``reason`` (for counters and DLQ headers)
and a human message naming the field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from pydantic import ValidationError

from events.contracts import MODEL_BY_TOPIC, Event, FraudLabel

MAX_PAYLOAD_BYTES = 16 * 1024
"""Real events are ~400 bytes; anything this large is a bug or an attack, not a payment."""
MAX_CLOCK_SKEW = timedelta(minutes=5)
"""Producers' clocks drift a little; an event further in the future than this is corrupt."""
EARLIEST_EVENT_TIME = datetime(2000, 1, 1, tzinfo=UTC)
"""Older timestamps are zero/epoch defaults from broken producers, not history."""

_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF][0-9a-fA-F]{2}")


class Reason(StrEnum):
    """Stable reason codes: dashboards and DLQ consumers key on these, so never rename one."""

    UNKNOWN_TOPIC = "unknown_topic"
    OVERSIZED = "oversized"
    EMPTY = "empty"
    INVALID_UNICODE = "invalid_unicode"
    BAD_JSON = "bad_json"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_FIELD = "missing_field"
    UNKNOWN_FIELD = "unknown_field"
    WRONG_TYPE = "wrong_type"
    INVALID_VALUE = "invalid_value"
    BAD_AMOUNT = "bad_amount"
    UNKNOWN_CURRENCY = "unknown_currency"
    BAD_TIMESTAMP = "bad_timestamp"
    FUTURE_TIMESTAMP = "future_timestamp"
    UNSUPPORTED_SCHEMA = "unsupported_schema"
    MISSING_KEY = "missing_key"
    KEY_MISMATCH = "key_mismatch"


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a record was refused; ``field`` is the offending field when there is one."""

    reason: Reason
    message: str
    field: str | None = None

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"


_TYPE_ERRORS = ("_type", "_parsing", "is_instance_of")


def classify(exc: ValidationError) -> Rejection:
    """Map pydantic's first error to a reason code (shared with the replay loader)."""
    err = exc.errors(include_url=False)[0]
    loc = ".".join(str(p) for p in err["loc"])
    kind, msg = err["type"], err["msg"]
    field = loc or None
    if kind == "json_invalid":
        return Rejection(Reason.BAD_JSON, msg)
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return Rejection(Reason.NOT_AN_OBJECT, "payload must be a JSON object")
    if kind == "missing":
        return Rejection(Reason.MISSING_FIELD, f"field {loc!r} is required", field)
    if kind == "extra_forbidden":
        return Rejection(Reason.UNKNOWN_FIELD, f"field {loc!r} is not part of the contract", field)
    if loc == "schema_version":
        return Rejection(Reason.UNSUPPORTED_SCHEMA, f"schema_version: {msg}", field)
    if loc == "amount":
        return Rejection(Reason.BAD_AMOUNT, f"amount: {msg}", field)
    if loc == "currency" and kind == "value_error":
        return Rejection(Reason.UNKNOWN_CURRENCY, msg.removeprefix("Value error, "), field)
    if loc in ("event_time", "label_time"):
        return Rejection(Reason.BAD_TIMESTAMP, f"{loc}: {msg}", field)
    if kind.endswith(_TYPE_ERRORS):
        return Rejection(Reason.WRONG_TYPE, f"{loc}: {msg}", field)
    return Rejection(Reason.INVALID_VALUE, f"{loc}: {msg}", field)


def check_times(event: Event, now: datetime) -> Rejection | None:
    """Semantic time checks pydantic cannot do alone: future, epoch-zero, label before event."""
    times = {"event_time": event.event_time}
    if isinstance(event, FraudLabel):
        times["label_time"] = event.label_time
        if event.label_time < event.event_time:
            return Rejection(Reason.BAD_TIMESTAMP, "label_time is before the labelled event's event_time",
                             "label_time")
    for name, value in times.items():
        if value > now + MAX_CLOCK_SKEW:
            return Rejection(Reason.FUTURE_TIMESTAMP,
                             f"{name} {value.isoformat()} is more than {MAX_CLOCK_SKEW} ahead of now", name)
        if value < EARLIEST_EVENT_TIME:
            return Rejection(Reason.BAD_TIMESTAMP, f"{name} {value.isoformat()} is before 2000", name)
    return None


def decode(
    topic: str | type[Event],
    value: bytes | None,
    *,
    key: bytes | str | None = None,
    require_key: bool = False,
    now: datetime | None = None,
) -> Event | Rejection:
    """Validate one record of ``topic`` (a topic name or the event model directly).

    ``key`` is checked against ``account_id`` when given; ``require_key`` rejects keyless
    records (Kafka consumers pass ``msg.key()`` and ``require_key=True``).
    """
    if isinstance(topic, str):
        model = MODEL_BY_TOPIC.get(topic)
        if model is None:
            return Rejection(Reason.UNKNOWN_TOPIC, f"no event contract for topic {topic!r}")
    else:
        model = topic
    if not value:
        return Rejection(Reason.EMPTY, "record has no value (tombstone or empty payload)")
    if len(value) > MAX_PAYLOAD_BYTES:
        return Rejection(Reason.OVERSIZED, f"payload is {len(value)} bytes, limit {MAX_PAYLOAD_BYTES}")
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejection(Reason.INVALID_UNICODE, f"payload is not UTF-8: {exc.reason} at byte {exc.start}")
    try:
        event = model.model_validate_json(text, strict=True)
    except ValidationError as exc:
        rejection = classify(exc)
        if rejection.reason is Reason.BAD_JSON and _SURROGATE_ESCAPE.search(text):
            return Rejection(Reason.INVALID_UNICODE, "payload escapes a lone UTF-16 surrogate")
        return rejection
    problem = check_times(event, now or datetime.now(UTC))
    if problem is not None:
        return problem
    if key is not None:
        key_text = key.decode("utf-8", "replace") if isinstance(key, bytes) else key
        if key_text != event.account_id:
            return Rejection(Reason.KEY_MISMATCH, f"record key {key_text[:64]!r} is not account_id "
                             f"{event.account_id!r}", "account_id")
    elif require_key:
        return Rejection(Reason.MISSING_KEY, "record has no key (expected the account_id)", "account_id")
    return event

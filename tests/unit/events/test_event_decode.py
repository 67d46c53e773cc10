"""decode(): every corpus case is rejected with its reason code; valid events round-trip."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from events_bad_corpus import load_cases, load_valid

from events.contracts import FraudLabel, Login, Transaction
from events.decode import MAX_CLOCK_SKEW, Reason, Rejection, decode
from events.wire import encode

CASES = load_cases()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_event_is_rejected_with_its_reason(case) -> None:
    result = decode(case.topic, case.value, key=case.key, require_key=True)
    assert isinstance(result, Rejection), f"{case.name} was accepted"
    assert result.reason == case.expected_reason
    assert result.message


def test_corpus_covers_every_reason_a_record_can_have() -> None:
    covered = {c.expected_reason for c in CASES}
    assert covered == {r.value for r in Reason} - {"unknown_topic"}


@pytest.mark.parametrize("case", load_valid(), ids=lambda c: c.topic)
def test_valid_events_pass(case) -> None:
    event = decode(case.topic, case.value, key=case.key, require_key=True)
    assert not isinstance(event, Rejection), event
    assert event.topic == case.topic
    again = decode(case.topic, encode(event), key=case.key)
    assert again == event


def test_wire_format_is_json_with_z_times() -> None:
    event = Login(event_id="l-9", event_time=datetime(2026, 3, 1, 12, 30, tzinfo=UTC), account_id="a-1",
                  success=False, device_id="d", ip="1.1.1.1", country="US", two_fa_used=False, channel="api")
    assert b'"event_time":"2026-03-01T12:30:00Z"' in encode(event).replace(b" ", b"")


def test_non_utc_offsets_are_normalized_to_utc() -> None:
    raw = (b'{"event_id":"l","event_time":"2026-03-01T14:30:00+02:00","account_id":"a","success":true,'
           b'"device_id":"d","ip":"i","country":"US","two_fa_used":false,"channel":"web"}')
    event = decode(Login, raw)
    assert isinstance(event, Login)
    assert event.event_time == datetime(2026, 3, 1, 12, 30, tzinfo=UTC)


def test_future_limit_is_relative_to_now() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    label = FraudLabel(event_id="t", event_time=now - timedelta(days=1), account_id="a", fraud_type="ato",
                       label_time=now + MAX_CLOCK_SKEW - timedelta(seconds=1))
    assert isinstance(decode(FraudLabel, encode(label), now=now), FraudLabel)
    assert decode(FraudLabel, encode(label), now=now - timedelta(minutes=1)).reason == Reason.FUTURE_TIMESTAMP


def test_unknown_topic_is_a_rejection_not_an_exception() -> None:
    result = decode("events.unknown", b"{}")
    assert isinstance(result, Rejection) and result.reason == Reason.UNKNOWN_TOPIC


def test_key_is_optional_unless_required() -> None:
    txn = Transaction(event_id="t", event_time=datetime(2026, 1, 1, tzinfo=UTC), account_id="a", txn_type="deposit",
                      amount=5, currency="USD", device_id="d", ip="i", country="US", channel="web")
    assert isinstance(decode(Transaction, encode(txn)), Transaction)
    assert decode(Transaction, encode(txn), require_key=True).reason == Reason.MISSING_KEY
    assert isinstance(decode(Transaction, encode(txn), key=b"a", require_key=True), Transaction)

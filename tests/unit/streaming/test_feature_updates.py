"""The features.<group> message: a lossless round trip, and clear errors naming the field."""

from __future__ import annotations

import json

import pytest

from streaming.updates import FeatureUpdate, UpdateError, decode_update, encode_update


def test_round_trip_keeps_every_field() -> None:
    update = FeatureUpdate("account_txn_velocity", 1, "account_id", "acc-1", 1_700_000_000_123_456,
                           {"txn_count_1m": 3, "txn_amount_mean_1h": None, "last_txn_type": "p2p_transfer"},
                           correction=True, emitted_at=1_700_000_001.5)
    raw = encode_update(update)
    assert json.loads(raw)["event_time"] == "2023-11-14T22:13:20.123456Z"
    assert decode_update(raw) == update


@pytest.mark.parametrize(("payload", "field"), [
    ({"format": 1, "version": 1}, "group"),
    ({"format": 1, "group": "g", "version": "1", "join_key": "k", "entity_key": "e", "event_time_us": 1,
      "features": {}}, "version"),
    ({"format": 1, "group": "g", "version": 1, "join_key": "k", "entity_key": "e", "event_time_us": 1,
      "features": []}, "features"),
    ({"format": 2}, "format"),
])
def test_bad_updates_name_the_field(payload: dict, field: str) -> None:
    with pytest.raises(UpdateError, match=field):
        decode_update(json.dumps(payload).encode())


@pytest.mark.parametrize("raw", [None, b"", b"{not json", b"[1, 2]", b"\xff\xfe"])
def test_unreadable_records_are_update_errors(raw: bytes | None) -> None:
    with pytest.raises(UpdateError):
        decode_update(raw)

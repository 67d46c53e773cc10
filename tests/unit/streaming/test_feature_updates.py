"""The features.<group> message: a lossless round trip of a pack, and clear errors naming the field."""

from __future__ import annotations

import json
import math

import pytest

from streaming.updates import FeatureUpdate, UpdateError, decode_updates, encode_updates, pack_rows


def _update(key: str, t: int, **features: object) -> FeatureUpdate:
    return FeatureUpdate("account_txn_velocity", 1, "account_id", key, t, dict(features), correction=key == "acc-2",
                         emitted_at=1_700_000_001.5)


def test_round_trip_keeps_every_field_of_every_row() -> None:
    updates = [_update("acc-1", 1_700_000_000_123_456, txn_count_1m=3, txn_amount_mean_1h=None,
                       last_txn_type="p2p_transfer"),
               _update("acc-2", 1_700_000_000_123_457, txn_count_1m=4, txn_amount_mean_1h=2.5,
                       last_txn_type="deposit")]
    raw = encode_updates(updates)
    body = json.loads(raw)
    assert body["features"] == ["txn_count_1m", "txn_amount_mean_1h", "last_txn_type"]  # names once per message
    assert len(body["rows"]) == 2
    assert decode_updates(raw) == updates


def test_nan_is_written_as_missing() -> None:
    (got,) = decode_updates(encode_updates([_update("a", 1, txn_amount_mean_1h=math.nan)]))
    assert got.features == {"txn_amount_mean_1h": None}


def test_a_message_holds_one_group_version() -> None:
    other = FeatureUpdate("device_sharing", 1, "device_id", "d", 1, {})
    with pytest.raises(UpdateError, match="one group"):
        encode_updates([_update("a", 1), other])


def test_packs_are_split_at_the_row_limit() -> None:
    assert [len(p) for p in pack_rows([[i] for i in range(7)], limit=3)] == [3, 3, 1]


GOOD = {"format": 2, "group": "g", "version": 1, "join_key": "k", "features": ["f"], "rows": [["e", 1, False, [1]]]}


@pytest.mark.parametrize(("change", "field"), [
    ({"group": None}, "group"),
    ({"version": "1"}, "version"),
    ({"features": {"f": 1}}, "features"),
    ({"rows": [["e", 1, False]]}, r"rows\[0\]"),
    ({"rows": [["e", "1", False, [1]]]}, r"rows\[0\]"),
    ({"rows": [["e", 1, False, [1, 2]]]}, r"rows\[0\] has 2 values"),
    ({"format": 1}, "format"),
])
def test_bad_updates_name_the_field(change: dict, field: str) -> None:
    payload = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    with pytest.raises(UpdateError, match=field):
        decode_updates(json.dumps(payload).encode())


@pytest.mark.parametrize("raw", [None, b"", b"{not json", b"[1, 2]", b"\xff\xfe"])
def test_unreadable_records_are_update_errors(raw: bytes | None) -> None:
    with pytest.raises(UpdateError):
        decode_updates(raw)

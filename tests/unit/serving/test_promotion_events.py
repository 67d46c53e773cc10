"""Which alert records trigger a reload, and the listener's behaviour with no broker (polling stays in charge)."""

from __future__ import annotations

import json
import time

import pytest

from riskpipe.stack.net import free_port
from serving.promotion_events import PromotionListener, is_promotion


@pytest.mark.parametrize("value, expected", [
    (json.dumps({"type": "model.promoted", "tag": "fraud_xgb:abc"}).encode(), True),
    (json.dumps({"type": "sync.skew", "group": "g"}).encode(), False),
    (b"[1, 2]", False), (b"not json", False), (b"\xff\xfe", False), (b"", False), (None, False),
])
def test_only_model_promoted_records_trigger(value: bytes | None, expected: bool) -> None:
    assert is_promotion(value) is expected


def test_listener_without_broker_never_triggers_and_stops_promptly() -> None:
    calls = []
    listener = PromotionListener(f"127.0.0.1:{free_port()}", "alerts", lambda: calls.append(1), retry_s=0.1)
    listener.start()
    time.sleep(0.5)
    started = time.monotonic()
    listener.stop()
    assert time.monotonic() - started < 3
    assert not listener.ready.is_set() and calls == [] and listener.events == 0

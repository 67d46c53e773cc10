"""The prediction-log drain ends under steady traffic and stores everything logged before it started.

A drain that waited for the log to go quiet never ended while the gateway kept scoring (the
monitoring DAG and `riskpipe demo` hung). Here a producer keeps logging during the whole drain.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from features.offline_access import offline_session
from monitoring.served import SERVED_TABLE, drain_predictions, predictions_topic
from riskpipe.settings import Settings
from serving.prediction_log import PredictionLogger
from streaming.topology import ensure_topics

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def _record(i: int) -> dict[str, object]:
    now = datetime.now(UTC).isoformat()
    return {"served_at": now, "event_id": f"e{i}", "account_id": f"a{i % 7}", "event_time": now,
            "model_tag": "fraud_xgb:test", "score": 0.1, "decision": "allow", "degraded": False,
            "features": {"txn_count_1h": float(i % 5)}}


def test_drain_stops_at_the_start_offsets_while_traffic_goes_on(tmp_path, broker: str, unique: str) -> None:
    settings = Settings(data_dir=tmp_path / "rp", kafka_bootstrap_servers=broker, topic_prefix=f"{unique}.",
                        monitoring_group_id=unique)
    ensure_topics(settings, [predictions_topic(settings)])
    before = 300
    logger = PredictionLogger.from_settings(settings)
    for i in range(before):
        logger.log(f"a{i % 7}", _record(i))
    assert logger.close(30) == 0

    stop = threading.Event()
    sent = [0]

    def steady() -> None:  # ~500 records/s until the drain returns
        live = PredictionLogger.from_settings(settings)
        i = before
        while not stop.wait(0.002):
            live.log(f"a{i % 7}", _record(i))
            i += 1
        sent[0] = i - before
        live.close(30)

    thread = threading.Thread(target=steady, daemon=True)
    thread.start()
    try:
        stored = drain_predictions(settings)
    finally:
        stop.set()
        thread.join(60)

    assert sent[0] > 0  # traffic really flowed during the drain
    with offline_session(settings) as store:
        ids = set(store.query(f"SELECT event_id FROM {SERVED_TABLE}").to_pandas()["event_id"])
    assert {f"e{i}" for i in range(before)} <= ids  # everything logged before the drain is stored
    assert stored == len(ids)

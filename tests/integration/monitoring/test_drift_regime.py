"""Drift detection end to end: simulator regimes -> real model -> prediction log on a real broker -> DuckDB.

One seeded history (150 accounts, 5 days): the baseline fraud regime, then on day 4 an injected
``fraud_wave`` regime (cards tested every second, ATO drained in minutes). A model is trained on
days 1-3 and promoted; days 3 and 4 are replayed through the prediction log. Monitoring over day 3
(the same regime as training) must raise no alarm; over day 4 it must flag feature and prediction
drift and ask for retraining, with its report files, history rows and ``latest.json``.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest

from features.offline import DuckDBOfflineStore
from monitoring.history import HISTORY_TABLE
from monitoring.run import latest_result, run_monitoring
from monitoring.served import SERVED_TABLE, predictions_topic
from monitoring.testing import DRIFT_DAY, day, drift_scenario, replay_served, window_frame
from riskpipe.settings import Settings
from streaming.topology import ensure_topics

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, broker: str) -> dict:
    name = f"mon-{uuid.uuid4().hex[:8]}"
    settings = Settings(data_dir=tmp_path_factory.mktemp("monitoring") / "riskpipe", kafka_bootstrap_servers=broker,
                        topic_prefix=f"{name}.", monitoring_group_id=name, kafka_session_timeout_ms=2000)
    ensure_topics(settings, [predictions_topic(settings)])
    tag = drift_scenario(settings)
    stationary = window_frame(settings, DRIFT_DAY - 1, DRIFT_DAY)
    drifted = window_frame(settings, DRIFT_DAY, DRIFT_DAY + 1)
    sent = replay_served(settings, stationary, tag) + replay_served(settings, drifted, tag)
    assert sent == len(stationary) + len(drifted)
    return {"settings": settings, "tag": tag, "rows": (len(stationary), len(drifted))}


def test_stationary_day_raises_no_alarm(served: dict) -> None:
    settings = served["settings"]
    result = run_monitoring(settings, now=day(DRIFT_DAY), window=timedelta(days=1))
    drift = result.summary["drift"]
    assert result.summary["served_rows"] == served["rows"][0]  # drained everything, windowed to day 3
    assert drift["enough_rows"] and drift["features_tested"] >= 20
    assert drift["share_drifted"] < settings.monitoring_drift_share
    assert not drift["prediction_drift"]["drifted"]
    assert result.alarms == [] and not result.should_retrain
    # served values came from the same offline history: the skew check recomputes them exactly
    skew = result.summary["skew"]
    assert skew["sampled"] == min(settings.monitoring_skew_sample, served["rows"][0])
    assert set(skew["per_feature"]) == set(drift["per_feature"]) - set(skew["not_checked"])
    assert skew["skewed_features"] == [] and skew["max_mismatch_rate"] == 0.0
    # performance is measured against the labels the simulator wrote (frauds labelled by the horizon)
    perf = result.summary["performance"]
    assert perf["rows"] == served["rows"][0] and perf["positives"] > 0 and 0 < perf["auc_pr"] <= 1


def test_injected_fraud_wave_is_detected_and_asks_for_retraining(served: dict) -> None:
    settings = served["settings"]
    result = run_monitoring(settings, now=day(DRIFT_DAY + 1), window=timedelta(days=1))
    drift = result.summary["drift"]
    assert result.summary["served_rows"] == served["rows"][1]
    assert {"txn_count_1m", "txn_count_5m", "card_payment_count_5m"} <= set(drift["drifted_features"])
    checks = {a.check for a in result.alarms}
    assert "feature_drift" in checks and result.should_retrain
    for name in ("drift.html", "summary.json", "skew.png", "performance.png", "history.png"):
        assert (result.report_dir / name).stat().st_size > 0, name
    summary = json.loads((result.report_dir / "summary.json").read_text())
    assert summary["should_retrain"] and summary["drift"]["share_drifted"] == drift["share_drifted"]
    latest = latest_result(settings)
    assert latest["run_id"] == result.run_id and latest["should_retrain"]
    assert {a["check"] for a in latest["alarms"]} == checks

    store = DuckDBOfflineStore(settings.duckdb_path)
    try:
        runs = store.query(f"SELECT run_id, value FROM {HISTORY_TABLE} WHERE feature = '*' "
                           "AND metric = 'share_drifted' ORDER BY computed_at").to_pylist()
        served_rows = store.query(f"SELECT count(*) FROM {SERVED_TABLE}").column(0)[0].as_py()
    finally:
        store.close()
    assert [r["run_id"] for r in runs][-1] == result.run_id and runs[-1]["value"] == drift["share_drifted"]
    assert served_rows == sum(served["rows"])  # a second drain of the same log stored nothing twice

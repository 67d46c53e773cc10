"""Alarm rules, retrain decision, history rows, the alert event and log-record parsing (pure functions)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from monitoring.alerts import alarm_messages, retrain_reason
from monitoring.history import history_rows
from monitoring.run import Alarm, MonitoringResult, evaluate_alarms, monitoring_dir, prune_reports
from monitoring.served import parse_record
from riskpipe.settings import Settings


def _summary(**over: object) -> dict:
    drift = {"enough_rows": True, "features_tested": 10, "share_drifted": 0.1, "drift_share_threshold": 0.3,
             "drifted_features": ["a"], "score_mean": 0.1, "reference_score_mean": 0.1,
             "per_feature": {"a": {"method": "K-S p_value", "value": 0.01, "threshold": 0.05, "drifted": True}},
             "prediction_drift": {"method": "K-S p_value", "value": 0.5, "threshold": 0.05, "drifted": False},
             "data_quality": {"features_more_missing": [], "missing_share": {}, "reference_missing_share": {},
                              "max_increase": 0.2}}
    skew = {"threshold": 0.05, "skewed_features": [], "per_feature": {
        "b": {"mismatch_rate": 0.0, "mean_abs_diff": 0.0}}}
    perf = {"judged": True, "auc_pr": 0.5, "test_auc_pr": 0.6, "max_relative_drop": 0.5, "precision_at_k": 0.4}
    base = {"drift": drift, "skew": skew, "performance": perf}
    for key, value in over.items():
        base[key] = {**base[key], **value}  # type: ignore[dict-item]
    return base


def test_a_healthy_summary_raises_nothing() -> None:
    assert evaluate_alarms(_summary()) == []


def test_each_threshold_raises_its_own_alarm() -> None:
    summary = _summary(drift={"share_drifted": 0.4, "prediction_drift": {"method": "m", "value": 0.2,
                                                                          "threshold": 0.1, "drifted": True}},
                       skew={"skewed_features": ["b"], "per_feature": {"b": {"mismatch_rate": 0.9,
                                                                             "mean_abs_diff": 1.0}}},
                       performance={"auc_pr": 0.2})
    checks = [a.check for a in evaluate_alarms(summary)]
    assert checks == ["feature_drift", "prediction_drift", "skew", "performance"]


def test_too_few_rows_or_unjudged_performance_never_alarm() -> None:
    summary = _summary(drift={"enough_rows": False, "share_drifted": 0.9}, performance={"judged": False,
                                                                                        "auc_pr": 0.0})
    assert evaluate_alarms(summary) == []


def test_data_quality_alone_alerts_but_does_not_retrain() -> None:
    quality = {"features_more_missing": ["a"], "missing_share": {"a": 0.9}, "reference_missing_share": {"a": 0.0},
               "max_increase": 0.2}
    alarms = evaluate_alarms(_summary(drift={"data_quality": quality}))
    assert [a.check for a in alarms] == ["data_quality"]
    result = MonitoringResult("r1", datetime.now(UTC), Path("/tmp/r1"), {}, alarms)
    assert not result.should_retrain
    assert MonitoringResult("r2", datetime.now(UTC), Path("/tmp/r2"), {},
                            [*alarms, Alarm("skew", "m", 1.0, 0.1, "x")]).should_retrain


def test_history_rows_hold_per_feature_and_run_level_figures() -> None:
    rows = history_rows("r1", datetime(2024, 3, 1, tzinfo=UTC), _summary())
    keys = {(r["check_name"], r["feature"], r["metric"]) for r in rows}
    assert {("feature_drift", "a", "K-S p_value"), ("feature_drift", "*", "share_drifted"),
            ("prediction_drift", "score", "K-S p_value"), ("skew", "b", "mismatch_rate"),
            ("performance", "*", "auc_pr")} <= keys
    assert all(r["computed_at"].tzinfo is None for r in rows)  # storage convention: naive UTC


def test_alert_event_only_when_alarms_and_reason_names_them() -> None:
    result = {"run_id": "r1", "report_dir": "/x", "should_retrain": True,
              "alarms": [{"check": "skew", "metric": "mismatch_rate:b", "value": 0.9, "threshold": 0.05,
                          "message": "b differs"}]}
    assert retrain_reason(result) == "monitoring r1: skew mismatch_rate:b=0.9 (threshold 0.05)"
    (key, value), = list(alarm_messages(result))
    event = json.loads(value)
    assert key == "monitoring.alarm" and event["kind"] == "monitoring.alarm" and event["alarms"][0]["check"] == "skew"
    assert list(alarm_messages({**result, "alarms": []})) == []


def test_log_records_parse_and_bad_ones_are_skipped() -> None:
    raw = {"served_at": "2024-03-01T10:00:00+00:00", "event_id": "e1", "account_id": "a1",
           "event_time": "2024-03-01T10:00:00+00:00", "model_tag": "m:1", "score": 0.3, "decision": "allow",
           "degraded": False, "features": {"x": 1.0, "y": None}}
    row = parse_record(json.dumps(raw).encode())
    assert row["served_at"] == datetime(2024, 3, 1, 10) and json.loads(row["entities"]) == {"account_id": "a1"}
    no_id = parse_record(json.dumps({**raw, "event_id": None}).encode())
    assert no_id["event_id"].startswith("auto-") and no_id["event_id"] == parse_record(
        json.dumps({**raw, "event_id": None}).encode())["event_id"]  # derived ids are stable: replays dedupe
    assert parse_record(b"not json") is None and parse_record(json.dumps({**raw, "score": "x"}).encode()) is None


def test_only_the_newest_report_folders_are_kept(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, monitoring_keep_reports=2)
    root = monitoring_dir(settings) / "reports"
    for run_id in ("20260101T000000-aaaaaa", "20260101T010000-bbbbbb", "20260101T020000-cccccc"):
        (root / run_id).mkdir(parents=True)
    assert prune_reports(settings) == 1
    assert sorted(p.name for p in root.iterdir()) == ["20260101T010000-bbbbbb", "20260101T020000-cccccc"]

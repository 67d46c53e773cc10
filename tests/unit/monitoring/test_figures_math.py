"""Figures from serving's real metric registry, worker status files and a monitoring summary."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from monitoring.figures import histogram_quantile, parse_samples, serving_figures, summarize_run, worker_figures
from riskpipe.settings import Settings
from serving.metrics import ServingMetrics
from streaming.status import WorkerStatus


def test_histogram_quantile_interpolates_inside_the_bucket() -> None:
    buckets = [(0.01, 50.0), (0.1, 90.0), (1.0, 100.0), (float("inf"), 100.0)]
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.01)
    assert histogram_quantile(0.7, buckets) == pytest.approx(0.01 + 0.09 * 20 / 40)
    assert histogram_quantile(0.99, buckets) == pytest.approx(0.1 + 0.9 * 9 / 10)
    assert histogram_quantile(0.5, [(0.1, 0.0), (float("inf"), 0.0)]) is None
    assert histogram_quantile(0.99, [(0.1, 1.0), (float("inf"), 10.0)]) == 0.1  # +Inf answers its lower bound


def test_qps_and_latency_over_the_interval_from_servings_own_metrics() -> None:
    registry = CollectorRegistry()
    metrics = ServingMetrics(registry)
    for _ in range(10):
        metrics.requests.labels(endpoint="score", status="200").inc()
        metrics.latency.labels(endpoint="score").observe(0.5)  # slow requests before the window
    before = parse_samples(generate_latest(registry).decode())
    for _ in range(20):
        metrics.requests.labels(endpoint="score", status="200").inc()
        metrics.latency.labels(endpoint="score").observe(0.0015)
    metrics.degraded.inc(3)
    after = parse_samples(generate_latest(registry).decode())

    fig = serving_figures(before, after, interval_s=2.0)
    (score,) = fig["endpoints"]
    assert score["requests_total"] == 30 and score["qps"] == pytest.approx(10.0)
    assert 1.0 < score["p50_ms"] <= 2.0 and score["p99_ms"] <= 2.0  # only the window's fast requests
    assert score["latency_window"] == "last 2s"
    assert fig["degraded_total"] == 3

    idle = serving_figures(after, after, interval_s=1.0)["endpoints"][0]
    assert idle["qps"] == 0 and idle["latency_window"] == "since start" and idle["p99_ms"] > 250


def test_worker_figures_read_status_files(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    status = WorkerStatus("stream-ingest", state="running")
    status.counters["consumed"] = 42
    status.saw_event_time(int((time.time() - 30) * 1e6))
    status.write(settings, force=True)

    rows = {r["worker"]: r for r in worker_figures(settings)}
    assert rows["stream-ingest"]["up"] and rows["stream-ingest"]["counters"] == {"consumed": 42}
    assert 29 <= rows["stream-ingest"]["freshness_s"] < 60
    assert rows["stream-compute"] == {"worker": "stream-compute", "state": "no status", "up": False, "counters": {},
                                      "last_event_time": None, "last_event_us": None, "freshness_s": None,
                                      "status_age_s": None}


def test_summary_figures_are_read_by_path_and_missing_stays_none() -> None:
    latest = {"run_id": "r1", "report_dir": "/x/r1", "should_retrain": True,
              "alarms": [{"check": "feature_drift", "message": "drift share 0.6 > 0.3"}]}
    summary = {"drift": {"share_drifted": 0.6}, "performance": {"auc_pr": "n/a"}}
    run = summarize_run(latest, summary)
    assert run["alarms_count"] == 1 and run["should_retrain"] and run["drift_share"] == 0.6
    assert run["auc_pr"] is None and run["skew_max_mismatch_rate"] is None


def test_read_monitoring_follows_the_latest_pointer_to_its_summary(tmp_path: Path) -> None:
    import json

    from monitoring.figures import NO_MONITORING_RUN, read_monitoring
    from monitoring.run import monitoring_dir

    settings = Settings(data_dir=tmp_path)
    assert read_monitoring(settings) == {"run": None, "message": NO_MONITORING_RUN}

    report_dir = monitoring_dir(settings) / "reports" / "r9"
    report_dir.mkdir(parents=True)
    (report_dir / "summary.json").write_text(json.dumps({
        "drift": {"share_drifted": 0.5, "prediction_drift_score": 0.2}, "skew": {"max_mismatch_rate": 0.01},
        "performance": {"auc_pr": 0.41}}))
    alarm = {"check": "feature_drift", "metric": "share_drifted", "value": 0.5, "threshold": 0.3, "message": "5/10"}
    (monitoring_dir(settings) / "latest.json").write_text(json.dumps({
        "run_id": "r9", "started_at": "2026-01-01T00:00:00+00:00", "report_dir": str(report_dir),
        "alarms": [alarm], "should_retrain": True}))

    run = read_monitoring(settings)["run"]
    assert run["report_dir"] == str(report_dir) and run["alarms"] == [alarm] and run["should_retrain"]
    assert (run["drift_share"], run["prediction_drift"], run["skew_max_mismatch_rate"], run["auc_pr"]) == (
        0.5, 0.2, 0.01, 0.41)

"""The exporter's collector: monitoring-run figures become gauges, and a failing source never fails a scrape."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from monitoring import exporter, figures
from monitoring.figures import parse_samples
from riskpipe.settings import Settings


def _scrape(collector: exporter.PipelineCollector) -> dict[tuple[str, tuple], float]:
    registry = CollectorRegistry()
    registry.register(collector)
    return {(n, tuple(sorted(labels.items()))): v for n, labels, v in parse_samples(generate_latest(registry).decode())}


@pytest.fixture
def collector(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> exporter.PipelineCollector:
    c = exporter.PipelineCollector(Settings(data_dir=tmp_path))
    monkeypatch.setattr(c, "_collect_lag", lambda fam: True)  # the broker part has its own integration test
    monkeypatch.setattr(c, "_collect_gpu", lambda fam: None)
    return c


def test_latest_monitoring_run_is_exported(collector: exporter.PipelineCollector,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    latest = {"run_id": "r7", "report_dir": "/r/r7", "should_retrain": True,
              "alarms": [{"check": "feature_drift"}, {"check": "skew"}, {"check": "skew"}]}
    summary = {"drift": {"share_drifted": 0.4, "prediction_drift_score": 0.12}}
    monkeypatch.setattr(figures, "read_monitoring", lambda s: {"run": figures.summarize_run(latest, summary)})
    samples = _scrape(collector)
    assert samples[("riskpipe_monitoring_alarms", (("check", "skew"),))] == 2
    assert samples[("riskpipe_monitoring_alarms", (("check", "feature_drift"),))] == 1
    assert samples[("riskpipe_monitoring_should_retrain", ())] == 1
    assert samples[("riskpipe_monitoring_drift_share", ())] == 0.4
    assert ("riskpipe_monitoring_auc_pr", ()) not in samples  # not in the summary: absent, not 0


def test_no_monitoring_run_yet_is_healthy_and_empty(collector: exporter.PipelineCollector) -> None:
    samples = _scrape(collector)
    assert samples[("riskpipe_exporter_source_up", (("source", "monitoring"),))] == 1
    assert not any(name.startswith("riskpipe_monitoring_") for name, _ in samples)
    assert samples[("riskpipe_worker_up", (("worker", "stream-ingest"),))] == 0  # no status file yet


def test_a_failing_source_is_reported_not_raised(collector: exporter.PipelineCollector,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(_fam: object) -> bool:
        raise RuntimeError("broker went away")

    monkeypatch.setattr(collector, "_collect_lag", broken)
    samples = _scrape(collector)
    assert samples[("riskpipe_exporter_source_up", (("source", "broker"),))] == 0
    assert samples[("riskpipe_exporter_source_up", (("source", "workers"),))] == 1

"""Monitoring before there is anything to monitor: it says why, raises no alarm, and never crashes."""

from __future__ import annotations

import json

import pytest

from monitoring.reference import NothingToMonitor
from monitoring.run import latest_result, run_monitoring
from riskpipe.settings import Settings
from riskpipe.stack.net import free_port
from serving.testing import promote_tiny_model

pytestmark = pytest.mark.integration


def test_no_production_model_is_a_usage_error(tmp_path) -> None:
    settings = Settings(data_dir=tmp_path / "rp", broker_port=free_port())
    with pytest.raises(NothingToMonitor, match="run `riskpipe train` first"):
        run_monitoring(settings)
    assert latest_result(settings) is None


def test_no_broker_no_traffic_no_training_run_is_reported_not_alarmed(tmp_path) -> None:
    settings = Settings(data_dir=tmp_path / "rp", broker_port=free_port())  # nothing listens there
    tag = promote_tiny_model(settings)  # a model without a training run: no drift reference

    result = run_monitoring(settings)

    s = result.summary
    assert "no broker" in s["drain"]["error"] and s["served_rows"] == 0
    assert s["model"]["tag"] == tag and "no run_id" in s["model"]["reference_problem"]
    assert s["drift"]["skipped"] and not s["drift"]["enough_rows"]
    assert s["skew"]["sampled"] == 0 and s["performance"]["auc_pr"] is None
    assert result.alarms == [] and not result.should_retrain
    assert json.loads((result.report_dir / "summary.json").read_text())["run_id"] == result.run_id
    assert latest_result(settings)["run_id"] == result.run_id

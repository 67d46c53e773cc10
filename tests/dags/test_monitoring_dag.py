"""`airflow dags test monitoring` on an injected drift: the run alarms, triggers retraining and alerts.

A seeded history with the ``fraud_wave`` regime from day 4, a model trained on days 1-3, day 4
replayed through the prediction log of the session broker; the DAG's form points the window at
day 4. The branch must run ``trigger_retraining`` (a ``retraining`` run with the alarms as its
``trigger_reason`` appears in Airflow's metadata DB) and publish a ``monitoring.alarm`` event.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from datetime import UTC, datetime
from typing import Any

import pytest

from monitoring.run import latest_result
from monitoring.served import predictions_topic
from monitoring.testing import DRIFT_DAY, day, drift_scenario, replay_served, window_frame
from riskpipe.settings import REPO_ROOT
from riskpipe.topics import ALERTS_TOPIC
from streaming.topology import ensure_topics

pytestmark = pytest.mark.integration


def test_monitoring_dag_shape() -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO_ROOT / "dags" / "monitoring.py"))
    assert bag.import_errors == {}
    dag = bag.dags["monitoring"]
    assert dag.timetable.expression == "0 * * * *" and dag.catchup is False and dag.max_active_runs == 1
    assert {t.task_id for t in dag.tasks} == {"run_checks", "decide", "trigger_retraining", "publish_alarm"}
    for downstream in ("trigger_retraining", "publish_alarm"):
        assert "decide" in dag.get_task(downstream).upstream_task_ids
    assert dag.get_task("trigger_retraining").trigger_dag_id == "retraining"


def test_monitoring_dag_triggers_retraining_on_drift(dag_runner: Any, first_alert: Any, unique: str) -> None:
    runner = dataclasses.replace(dag_runner, settings=dag_runner.settings.model_copy(update={
        "topic_prefix": f"{unique}.", "monitoring_group_id": unique, "kafka_session_timeout_ms": 2000}))
    settings = runner.settings
    ensure_topics(settings, [predictions_topic(settings), ALERTS_TOPIC])
    tag = drift_scenario(settings)
    replay_served(settings, window_frame(settings, DRIFT_DAY, DRIFT_DAY + 1), tag)

    proc = runner.test("monitoring", datetime.now(UTC).replace(minute=0, second=0, microsecond=0),
                       {"window_end": day(DRIFT_DAY + 1).isoformat(), "window_hours": 24})

    latest = latest_result(settings)
    assert latest is not None and latest["should_retrain"], proc.stdout[-3000:]
    assert "feature_drift" in {a["check"] for a in latest["alarms"]}
    db = sqlite3.connect(str(settings.airflow_home / "airflow.db"))
    try:
        confs = [json.loads(c) if isinstance(c, str | bytes) else c
                 for (c,) in db.execute("SELECT conf FROM dag_run WHERE dag_id = 'retraining'")]
    finally:
        db.close()
    assert any(str(c.get("trigger_reason", "")).startswith(f"monitoring {latest['run_id']}: feature_drift")
               for c in confs if isinstance(c, dict)), confs
    events = first_alert(settings.bootstrap_servers, unique, lambda e: e.get("kind") == "monitoring.alarm"
                         and e.get("run_id") == latest["run_id"])
    assert events and events[0]["should_retrain"] and events[0]["report_dir"] == latest["report_dir"]

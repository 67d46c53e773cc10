"""`airflow dags test retraining` on a small simulated history in a tmp DuckDB: every stage runs.

The run must register a model, promote it (first model: no champion), move the production
pointer and publish ``model.promoted`` on the ``alerts`` topic of the session broker.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from riskpipe.settings import REPO_ROOT
from riskpipe.topics import ALERTS_TOPIC
from training import model_store, promotion
from training.pipeline import runs_dir
from training.testing import simulate_history

pytestmark = pytest.mark.integration

GROUPS = ["account_txn_velocity", "account_withdrawals", "payment_method_sharing", "counterparty_inbound",
          "account_profile_nightly"]


def _ensure_topic(broker: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": broker})
    try:
        admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(10)
    except KafkaException as exc:
        if "already exists" not in str(exc).lower() and "TOPIC_ALREADY_EXISTS" not in str(exc):
            raise


def test_retraining_dag_shape() -> None:
    """Parsed in-process: weekly, a UI form, and the stages in order (thin tasks, XCom references)."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO_ROOT / "dags" / "retraining.py"))
    assert bag.import_errors == {}
    dag = bag.dags["retraining"]
    assert dag.timetable.expression == "0 0 * * 0" and dag.catchup is False and dag.max_active_runs == 1
    order = ["due", "build", "validate", "train", "evaluate", "register", "gate", "notify"]
    assert {t.task_id for t in dag.tasks} == set(order)
    for upstream, downstream in pairwise(order):
        assert upstream in dag.get_task(downstream).upstream_task_ids
    assert "evaluate" in dag.get_task("gate").upstream_task_ids  # gets the run dir and the tag
    params = dag.params
    assert params.get_param("window_days").value == 28 and params.get_param("force_promote").value is False
    assert params.get_param("device").schema["enum"] == ["auto", "cpu", "cuda"]


def test_retraining_dag_trains_registers_promotes_and_notifies(dag_runner, first_alert, unique: str) -> None:
    settings = dag_runner.settings
    simulate_history(settings, accounts=200, days=5, seed=11)
    _ensure_topic(settings.bootstrap_servers, ALERTS_TOPIC)
    conf = {"window_days": 5, "end": "2024-03-06T00:00:00", "gap_hours": 6, "device": "cpu",
            "feature_groups": GROUPS, "force_promote": False}

    dag_runner.test("retraining", datetime(2024, 3, 6, tzinfo=UTC), conf)

    runs = sorted(runs_dir(settings).iterdir())
    assert len(runs) == 1
    run = runs[0]
    for name in ("frame.parquet", "validation.json", "model.ubj", "evaluation.json", "report.html", "decision.json"):
        assert (run / name).exists(), name
    decision = json.loads((run / "decision.json").read_text())
    tag = json.loads((run / "registered.json").read_text())["tag"]
    assert decision["promote"] and decision["tag"] == tag
    assert promotion.production_tag(settings) == tag
    stored = {m.tag: m for m in model_store.list_models(settings)}
    assert set(stored[tag].metadata["feature_groups"]) == set(GROUPS)
    assert stored[tag].metadata["training_window"]["end"] == "2024-03-06 00:00:00"
    events = first_alert(settings.bootstrap_servers, unique, lambda e: e.get("tag") == tag, polls=40)
    assert events and events[0]["pointer"] == str(Path(str(settings.bentoml_home)) / "production.json")

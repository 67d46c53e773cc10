"""The training pipeline on simulated data in a real DuckDB store and a real BentoML model store.

One small history (300 accounts, 6 days) is simulated once for the module; the stages run in
order as the DAG runs them. What is proven: labels are only those known at the cutoff, the
model is far above the base rate (a bound from the data), the model store holds the lineage,
the gate blocks a model trained on shuffled labels, and promote/rollback move one pointer.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from features.offline import get_offline_store
from riskpipe.errors import UsageError
from riskpipe.settings import Settings
from training import model_store, pipeline, promotion
from training.config import TrainingConfig
from training.notify import publish_promotion
from training.testing import simulate_history
from training.train import train_model

pytestmark = pytest.mark.integration

START, END = datetime(2024, 3, 1), datetime(2024, 3, 7)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Simulate, then run build -> validate -> train -> evaluate -> register -> gate once."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("training") / "riskpipe")
    report = simulate_history(settings, accounts=300, days=6)
    config = TrainingConfig.from_settings(settings, start=START, end=END, gap=timedelta(hours=6), device="cpu",
                                          num_boost_round=120, early_stopping_rounds=20)
    run_dir = pipeline.build(settings, config)
    validation = pipeline.validate(run_dir)
    pipeline.train(run_dir)
    metrics = pipeline.evaluate(run_dir)
    tag = pipeline.register(settings, run_dir)
    decision = pipeline.gate(settings, run_dir, tag)
    return {"settings": settings, "config": config, "run_dir": run_dir, "metrics": metrics, "tag": tag,
            "decision": decision, "validation": validation, "report": report}


def test_labels_are_those_known_at_the_cutoff(trained: dict) -> None:
    frame = pipeline.load_training_set(trained["run_dir"]).frame
    store = get_offline_store(trained["settings"])
    try:
        truth = store.query("SELECT event_id, label_time FROM sim_ground_truth "
                            "WHERE event_topic = 'events.transactions'").to_pandas()
    finally:
        store.close()
    merged = frame.merge(truth, on="event_id", how="left", suffixes=("", "_truth"))
    known = merged["label_time_truth"].notna() & (merged["label_time_truth"] <= END)
    late_or_never = merged["label_time_truth"].isna() & merged["event_id"].isin(truth["event_id"]) \
        | (merged["label_time_truth"] > END)
    assert (merged.loc[known, "label"] == 1).all()
    assert (merged.loc[~known, "label"] == 0).all()
    assert late_or_never.sum() > 0  # the data really has frauds whose label was not known yet
    assert set(frame["split"]) == {"train", "validation", "test"}
    assert frame["event_time"].min() >= START and frame["event_time"].max() < END


def test_model_is_far_above_the_base_rate(trained: dict) -> None:
    metrics = trained["metrics"]
    assert metrics["positives"] >= 10  # enough test positives for the bound to mean something
    assert metrics["auc_pr"] >= 5 * metrics["positive_rate"]
    assert metrics["recall_at_1pct_fpr"] > 0.3
    evaluation = json.loads(Path(trained["run_dir"], "evaluation.json").read_text())
    assert set(evaluation["scenarios"]) <= {"ato", "p2p_scam", "stolen_payment"} and evaluation["scenarios"]
    assert sum(evaluation["decisions"].values()) == metrics["rows"]


def test_report_embeds_the_charts(trained: dict) -> None:
    html = Path(trained["run_dir"], "report.html").read_text()
    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,', html)
    assert images == ["PR and ROC curves", "score distribution", "feature importance"]
    assert "Recall per fraud scenario" in html and "Precision@k per day" in html


def test_model_store_holds_the_lineage_and_the_first_model_is_promoted(trained: dict) -> None:
    settings, tag = trained["settings"], trained["tag"]
    stored = {m.tag: m for m in model_store.list_models(settings)}[tag]
    meta = stored.metadata
    dataset = json.loads(Path(trained["run_dir"], "dataset.json").read_text())
    assert meta["data_fingerprint"] == dataset["fingerprint"]
    assert meta["feature_columns"] == dataset["feature_columns"]
    assert meta["feature_groups"]["account_txn_velocity"]["version"] == 1
    assert meta["training_window"]["label_cutoff"] == str(END)
    assert meta["thresholds"]["review"] <= meta["thresholds"]["block"]
    assert meta["metrics"]["auc_pr"] == pytest.approx(trained["metrics"]["auc_pr"])
    assert meta["code_version"]
    loaded = model_store.load(settings, tag)
    frame = pipeline.load_training_set(trained["run_dir"]).part("test")
    np.testing.assert_allclose(loaded.predict(frame), pipeline.load_run_model(trained["run_dir"]).predict(frame))
    assert trained["decision"]["promote"] and "no champion" in trained["decision"]["reason"]
    assert promotion.production_tag(settings) == tag


def test_gate_blocks_a_model_trained_on_shuffled_labels(trained: dict) -> None:
    settings, config = trained["settings"], trained["config"]
    training_set = pipeline.load_training_set(trained["run_dir"])
    train_rows = training_set.frame["split"] == "train"
    rng = np.random.default_rng(0)
    training_set.frame.loc[train_rows, "label"] = rng.permutation(training_set.frame.loc[train_rows, "label"])
    bad = train_model(training_set, config)
    bad_tag = model_store.save(settings, bad, {"note": "shuffled labels"})
    test = pipeline.load_training_set(trained["run_dir"]).part("test")  # the real labels
    decision = promotion.gate(settings, model_store.load(settings, bad_tag), test, config.promotion_margin,
                              config.min_lift)
    assert not decision.promote
    assert decision.champion_tag == trained["tag"] and "< champion" in decision.reason
    assert decision.challenger["auc_pr"] < decision.champion["auc_pr"]
    assert promotion.production_tag(settings) == trained["tag"]

    # a forced promotion is possible and reversible: rollback restores the champion
    promotion.set_production(settings, bad_tag, "forced for the test", action="force")
    assert promotion.production_tag(settings) == bad_tag
    entry = promotion.rollback(settings, "bad model")
    assert entry == {**entry, "tag": trained["tag"], "previous": bad_tag, "action": "rollback"}
    assert promotion.production_tag(settings) == trained["tag"]
    history = [h["action"] for h in promotion.read_pointer(settings)["history"]]
    assert history == ["promote", "force", "rollback"]
    with pytest.raises(UsageError, match="fewer than two"):
        promotion.rollback(settings)
    with pytest.raises(UsageError, match="not in the model store"):
        promotion.set_production(settings, "fraud_xgb:doesnotexist", "typo")


def test_promotion_event_reaches_the_broker(trained: dict, broker: str, unique: str) -> None:
    settings = trained["settings"].model_copy(update={"kafka_bootstrap_servers": broker})
    topic = f"{unique}.alerts"
    admin = AdminClient({"bootstrap.servers": broker})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(10)
    entry = trained["decision"]["entry"]
    publish_promotion(settings, entry, topic=topic)
    consumer = Consumer({"bootstrap.servers": broker, "group.id": unique, "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    try:
        message = None
        for _ in range(40):
            message = consumer.poll(0.5)
            if message is not None and not message.error():
                break
    finally:
        consumer.close()
    assert message is not None and not message.error()
    event = json.loads(message.value())
    assert message.key() == b"model.promoted"
    assert event["type"] == "model.promoted" and event["tag"] == trained["tag"]
    assert event["pointer"] == str(promotion.pointer_path(settings))


def test_cli_train_then_models_list(trained: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """`riskpipe train` with fewer groups: the champion cannot be re-scored, so nothing is promoted."""
    from typer.testing import CliRunner

    from riskpipe.cli import app
    from riskpipe.settings import get_settings
    from riskpipe.stack.net import free_port

    settings = trained["settings"]
    monkeypatch.setenv("RISKPIPE_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("RISKPIPE_BROKER_PORT", str(free_port()))  # no broker: the event is skipped, not fatal
    monkeypatch.setenv("RISKPIPE_TRAINING_DEVICE", "cpu")
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        result = runner.invoke(app, ["train", "--start", "2024-03-01", "--end", "2024-03-07", "--gap-hours", "6",
                                     "--groups", "account_txn_velocity,account_withdrawals,payment_method_sharing",
                                     "--json"])
        assert result.exit_code == 0, result.output
        summary = json.loads(result.output[result.output.index("{"):])
        assert summary["promoted"] is False
        assert "needs features missing from the test set" in summary["reason"]  # refused, not guessed
        listing = runner.invoke(app, ["models", "list"])
        assert listing.exit_code == 0
        production = [line for line in listing.output.splitlines() if line.startswith("*")]
        assert len(production) == 1 and trained["tag"] in production[0]
        assert summary["tag"] in listing.output
    finally:
        get_settings.cache_clear()

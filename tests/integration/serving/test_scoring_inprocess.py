"""The scoring service in-process (FastAPI TestClient) against real Redis, a real broker and a real model."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from features.online.redis_store import RedisOnlineStore
from riskpipe.settings import Settings
from riskpipe.stack.net import free_port, wait_port
from serving.http_app import create_app
from serving.metrics import ServingMetrics
from serving.runtime import ServingRuntime
from serving.testing import DEVICE, PROFILE, VELOCITY, promote_tiny_model

pytestmark = pytest.mark.integration

def _request(account: str, **over: object) -> dict:
    body = {"account_id": account, "txn_type": "withdrawal", "amount": 900.0, "currency": "USD",
            "device_id": f"{account}-dev", "ip": "10.0.0.1", "country": "DE", "event_id": f"{account}-e1"}
    return {**body, **over}


def _seed(redis_url: str, prefix: str, account: str, burst: bool) -> None:
    import redis

    store = RedisOnlineStore(redis.Redis.from_url(redis_url), prefix=prefix)
    t = datetime.now(UTC) - timedelta(seconds=30)  # at seeding time: freshness is measured from it
    rows = {"account_id": account, "event_time": t}
    store.write_batch(VELOCITY, pd.DataFrame([{**rows, "txn_count_1h": 9 if burst else 1}]))
    store.write_batch(PROFILE, pd.DataFrame([{**rows, "profile_amount_mean_30d": 50.0}]))
    device = {"device_id": f"{account}-dev", "event_time": t}
    store.write_batch(DEVICE, pd.DataFrame([{**device, "device_distinct_accounts_24h": 1}]))


@pytest.fixture
def runtime(tmp_path, redis_url: str, broker: str, unique: str):
    settings = Settings(data_dir=tmp_path / "rp", redis_url=redis_url, kafka_bootstrap_servers=broker,
                        online_key_prefix=unique, topic_prefix=f"{unique}.", serving_reload_interval_s=0.2)
    import prometheus_client

    rt = ServingRuntime.from_settings(settings, metrics=ServingMetrics(prometheus_client.CollectorRegistry()))
    yield rt
    rt.close()


def test_score_uses_online_features_on_demand_features_and_logs(runtime: ServingRuntime, redis_url: str,
                                                               broker: str, unique: str) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = f"{unique}.predictions.log"
    admin = AdminClient({"bootstrap.servers": broker})
    admin.create_topics([NewTopic(topic, 1)])[topic].result(10)
    tag = promote_tiny_model(runtime.settings)
    runtime.start()
    _seed(redis_url, unique, "acc-hot", burst=True)
    _seed(redis_url, unique, "acc-calm", burst=False)
    client = TestClient(create_app(lambda: runtime))

    hot = client.post("/score", json=_request("acc-hot"))
    calm = client.post("/score", json=_request("acc-calm", amount=40.0))
    assert hot.status_code == calm.status_code == 200, hot.text
    hot_body, calm_body = hot.json(), calm.json()
    assert hot_body["model_version"] == tag.split(":")[1]
    assert hot_body["score"] > calm_body["score"]
    assert hot_body["decision"] in ("review", "block") and calm_body["decision"] == "allow"
    assert not hot_body["degraded"]
    assert 0 < hot_body["freshness_s"]["account_txn_velocity"] < 600
    assert hot_body["freshness_s"]["counterparty_inbound"] is None  # no counterparty in the request
    assert hot_body["missing_features"] == 0
    assert hot_body["reasons"] and {r["feature"] for r in hot_body["reasons"]} <= set(
        runtime.scorer.models.require().model.feature_columns)
    assert any(r["feature"] == "txn_count_1h" for r in hot_body["reasons"])

    batch = client.post("/score/batch", json={"requests": [_request("acc-hot"), _request("acc-calm", amount=40.0),
                                                           _request("acc-x", counterparty_id="cp-1")]})
    assert batch.status_code == 200, batch.text
    results = batch.json()["results"]
    assert [r["score"] for r in results[:2]] == pytest.approx([hot_body["score"], calm_body["score"]])
    assert results[2]["missing_features"] > 0  # unknown account: features missing, still scored

    # every served vector reaches predictions.log
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    assert runtime.scorer.prediction_log.close() == 0
    assert runtime.scorer.prediction_log.sent == 5 and runtime.scorer.prediction_log.dropped == 0
    consumer = Consumer({"bootstrap.servers": broker, "group.id": unique, "auto.offset.reset": "earliest"})
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])  # no group join: Tansu holds joins
    records, deadline = [], time.monotonic() + 20
    while len(records) < 5 and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and msg.error() is None:
            records.append(json.loads(msg.value()))
    consumer.close()
    assert len(records) == 5
    hot_log = next(r for r in records if r["account_id"] == "acc-hot")
    assert hot_log["model_tag"] == tag and hot_log["features"]["txn_count_1h"] == 9.0
    assert hot_log["features"]["amount_to_mean_30d"] == pytest.approx(18.0)


@pytest.mark.parametrize("change, field", [
    ({"amount": -5}, "amount"), ({"currency": "XXX"}, "currency"), ({"country": "Germany"}, "country"),
    ({"txn_type": "teleport"}, "txn_type"), ({"event_time": "2024-01-01T00:00:00"}, "event_time"),
    ({"account_id": ""}, "account_id"), ({"surprise": 1}, "surprise"),
])
def test_bad_input_is_a_422_naming_the_field(runtime: ServingRuntime, change: dict, field: str) -> None:
    promote_tiny_model(runtime.settings)
    runtime.start()
    client = TestClient(create_app(lambda: runtime), raise_server_exceptions=False)
    response = client.post("/score", json=_request("acc-1", **change))
    assert response.status_code == 422, response.text
    assert any(d.startswith(field) for d in response.json()["detail"]), response.json()


def test_malformed_oversized_unauthorized_and_no_model(runtime: ServingRuntime, tmp_path) -> None:
    runtime.start()  # nothing promoted
    client = TestClient(create_app(lambda: runtime), raise_server_exceptions=False)
    no_model = client.post("/score", json=_request("acc-1"))
    assert no_model.status_code == 503 and "riskpipe train" in no_model.json()["error"]
    assert client.post("/score", content=b"{not json", headers={"content-type": "application/json"}).status_code == 422
    assert client.post("/score", content=b"x" * 3_000_000,
                       headers={"content-type": "application/json"}).status_code == 413
    too_many = client.post("/score/batch", json={"requests": [_request("a")] * 1001})
    assert too_many.status_code in (413, 422)
    assert client.post("/score/batch", json={"requests": []}).status_code == 422
    assert client.get("/openapi.json").json()["paths"].keys() >= {"/score", "/score/batch"}

    keyed = ServingRuntime(runtime.settings.model_copy(update={"serving_api_key": SecretStr("s3cret")}), runtime.scorer,
                           runtime.metrics)
    keyed_client = TestClient(create_app(lambda: keyed), raise_server_exceptions=False)
    assert keyed_client.post("/score", json=_request("acc-1")).status_code == 401
    assert keyed_client.post("/score", json=_request("acc-1"), headers={"x-api-key": "nope"}).status_code == 401
    assert keyed_client.post("/score", json=_request("acc-1"), headers={"x-api-key": "s3cret"}).status_code == 503


def test_hot_reload_switches_model_without_failing_requests(runtime: ServingRuntime, redis_url: str,
                                                            unique: str) -> None:
    first = promote_tiny_model(runtime.settings, seed=0)
    runtime.start()
    _seed(redis_url, unique, "acc-r", burst=True)
    client = TestClient(create_app(lambda: runtime))
    assert client.post("/score", json=_request("acc-r")).json()["model_version"] == first.split(":")[1]
    second = promote_tiny_model(runtime.settings, seed=1, rounds=5)
    versions = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        response = client.post("/score", json=_request("acc-r"))
        assert response.status_code == 200, response.text
        versions.append(response.json()["model_version"])
        if versions[-1] == second.split(":")[1]:
            break
    assert versions[-1] == second.split(":")[1]
    assert set(versions) <= {first.split(":")[1], second.split(":")[1]}


def test_redis_outage_degrades_then_recovers(tmp_path, broker: str, unique: str) -> None:
    binary = shutil.which("redis-server")
    assert binary is not None
    port = free_port()
    cmd = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        assert wait_port("127.0.0.1", port, timeout=10)
        settings = Settings(data_dir=tmp_path / "rp", redis_url=url, kafka_bootstrap_servers=broker,
                            online_key_prefix=unique, serving_redis_retry_s=0.2)
        import prometheus_client

        rt = ServingRuntime.from_settings(settings, metrics=ServingMetrics(prometheus_client.CollectorRegistry()),
                                          prediction_log=False)
        promote_tiny_model(settings)
        rt.start()
        _seed(url, unique, "acc-o", burst=True)
        client = TestClient(create_app(lambda: rt), raise_server_exceptions=False)
        healthy = client.post("/score", json=_request("acc-o")).json()
        assert healthy["degraded"] is False

        proc.terminate()
        proc.wait(timeout=10)
        for _ in range(3):
            response = client.post("/score", json=_request("acc-o"))
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["degraded"] is True and body["missing_features"] > 0
            assert body["freshness_s"]["account_txn_velocity"] is None

        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert wait_port("127.0.0.1", port, timeout=10)
        _seed(url, unique, "acc-o", burst=True)  # a fresh redis has no data: the ingester would refill it
        deadline, body = time.monotonic() + 10, {"degraded": True}
        while body["degraded"] and time.monotonic() < deadline:
            time.sleep(0.1)
            body = client.post("/score", json=_request("acc-o")).json()
        assert body["degraded"] is False
        assert body["score"] == pytest.approx(healthy["score"])
        rt.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)

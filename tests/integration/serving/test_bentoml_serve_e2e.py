"""One real `bentoml serve` process: healthy with no model, 503 until a promotion, then scores over HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import pytest

from riskpipe.settings import Settings
from riskpipe.stack.net import free_port, wait_port
from serving.testing import promote_tiny_model

pytestmark = pytest.mark.integration

REQUEST = {"account_id": "acc-e2e", "txn_type": "p2p_transfer", "amount": 120.0, "currency": "EUR",
           "device_id": "dev-e2e", "ip": "10.1.1.1", "country": "FR", "counterparty_id": "cp-e2e"}


def test_bentoml_serve_end_to_end(tmp_path, redis_url: str, broker: str, unique: str) -> None:
    port = free_port()
    settings = Settings(data_dir=tmp_path / "rp", redis_url=redis_url, kafka_bootstrap_servers=broker,
                        online_key_prefix=unique, topic_prefix=f"{unique}.", serving_port=port,
                        serving_reload_interval_s=0.5)
    env = {**os.environ, **settings.to_env(), "BENTOML_HOME": str(settings.bentoml_home),
           "BENTOML_DO_NOT_TRACK": "true"}
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "bentoml", "serve", "serving.service:FraudScorer",
                             "--host", "127.0.0.1", "--port", str(port)], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        assert wait_port("127.0.0.1", port, timeout=60), (tmp_path / "serve.log").read_text()[-3000:]
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=30) as client:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:  # the port opens before the worker has imported the service
                try:
                    if client.get("/healthz", timeout=5).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.3)
            assert client.get("/healthz").status_code == 200
            no_model = client.post("/score", json=REQUEST)
            assert no_model.status_code == 503 and "riskpipe train" in no_model.json()["error"]
            bad = client.post("/score", json={**REQUEST, "amount": "lots"})
            assert bad.status_code == 422 and bad.json()["detail"][0].startswith("amount")

            tag = promote_tiny_model(settings)
            deadline, response = time.monotonic() + 20, no_model
            while response.status_code == 503 and time.monotonic() < deadline:
                time.sleep(0.2)
                response = client.post("/score", json=REQUEST)
            assert response.status_code == 200, response.text
            assert response.json()["model_version"] == tag.split(":")[1]
            assert client.post("/score/batch", json={"requests": [REQUEST, REQUEST]}).status_code == 200
            metrics = client.get("/metrics").text
            assert "riskpipe_serving_requests" in metrics and "riskpipe_serving_feature_fetch_seconds" in metrics
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

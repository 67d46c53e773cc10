"""Hot reload on a real broker: a `model.promoted` event switches the served model at once, with no restart
and no failed request in flight; without a broker, polling the pointer still switches it."""

from __future__ import annotations

import threading
import time

import prometheus_client
import pytest
from fastapi.testclient import TestClient

from riskpipe.settings import Settings
from riskpipe.stack.net import free_port
from serving.http_app import create_app
from serving.metrics import ServingMetrics
from serving.runtime import ServingRuntime
from serving.testing import promote_tiny_model
from training.notify import publish_promotion

pytestmark = pytest.mark.integration

REQUEST = {"account_id": "acc-reload", "txn_type": "withdrawal", "amount": 300.0, "currency": "EUR",
           "device_id": "dev-reload", "ip": "10.0.0.9", "country": "FR"}


def _runtime(tmp_path, redis_url: str, broker: str, unique: str, poll_s: float) -> ServingRuntime:
    settings = Settings(data_dir=tmp_path / "rp", redis_url=redis_url, kafka_bootstrap_servers=broker,
                        online_key_prefix=unique, topic_prefix=f"{unique}.", serving_reload_interval_s=poll_s)
    return ServingRuntime.from_settings(settings, metrics=ServingMetrics(prometheus_client.CollectorRegistry()),
                                        prediction_log=False)


class _Traffic:
    """Scores continuously in a thread while the model is swapped; records every non-200 and each version seen."""

    def __init__(self, runtime: ServingRuntime):
        self.client = TestClient(create_app(lambda: runtime), raise_server_exceptions=False)
        self.failures: list[str] = []
        self.versions: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            response = self.client.post("/score", json=REQUEST)
            if response.status_code != 200:
                self.failures.append(f"{response.status_code} {response.text[:200]}")
            else:
                self.versions.append(response.json()["model_version"])

    def __enter__(self) -> _Traffic:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def _wait_for_version(runtime: ServingRuntime, version: str, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        current = runtime.scorer.models.current
        if current is not None and current.version == version:
            return time.monotonic() - started
        time.sleep(0.02)
    raise AssertionError(f"served model never became {version} within {timeout} s")


def test_promotion_event_reloads_without_restart_or_failed_requests(tmp_path, redis_url: str, broker: str,
                                                                    unique: str) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    alerts = f"{unique}.alerts"
    admin = AdminClient({"bootstrap.servers": broker})  # kept referenced: its futures die with it
    admin.create_topics([NewTopic(alerts, 1)])[alerts].result(10)
    runtime = _runtime(tmp_path, redis_url, broker, unique, poll_s=3600)  # polling effectively off
    first = promote_tiny_model(runtime.settings, seed=1)
    runtime.start()
    try:
        assert runtime.promotions is not None and runtime.promotions.ready.wait(20), "listener never assigned"
        assert runtime.scorer.models.require().tag == first
        with _Traffic(runtime) as traffic:
            time.sleep(0.3)
            second = promote_tiny_model(runtime.settings, seed=2, rounds=10)
            assert runtime.scorer.models.require().tag == first  # the pointer moved; nothing polls it
            publish_promotion(runtime.settings, {"tag": second, "previous": first}, topic=alerts, timeout=10)
            _wait_for_version(runtime, second.split(":")[1], timeout=20)
            time.sleep(0.3)
        assert runtime.promotions.events >= 1
        assert runtime.scorer.models.swaps == 2
        assert not traffic.failures
        assert {first.split(":")[1], second.split(":")[1]} <= set(traffic.versions)
        assert traffic.versions[-1] == second.split(":")[1]
    finally:
        runtime.close()


def test_polling_still_reloads_when_no_broker_answers(tmp_path, redis_url: str, unique: str) -> None:
    dead_broker = f"127.0.0.1:{free_port()}"
    runtime = _runtime(tmp_path, redis_url, dead_broker, unique, poll_s=0.2)
    first = promote_tiny_model(runtime.settings, seed=1)
    runtime.start()
    try:
        with _Traffic(runtime) as traffic:
            second = promote_tiny_model(runtime.settings, seed=2, rounds=10)
            _wait_for_version(runtime, second.split(":")[1], timeout=10)
        assert runtime.promotions is not None and not runtime.promotions.ready.is_set()
        assert runtime.scorer.models.require().tag == second != first
        assert not traffic.failures
    finally:
        runtime.close()

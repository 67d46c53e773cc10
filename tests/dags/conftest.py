"""Fixtures of the DAG tests: one migrated Airflow (SQLite) per session, `airflow dags test` runner.

In-process DagBag loading needs an AIRFLOW_HOME before airflow is first imported, so a
throwaway one is set at collection time unless the caller chose one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from riskpipe.settings import REPO_ROOT, Settings
from riskpipe.stack.airflow import airflow_env

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="rp-airflow-parse-"))
# DAG files import `dags._features_common` and `plugins.*` from the repository root, which
# airflow_env() puts on PYTHONPATH for Airflow's processes; in-process parsing needs the same.
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

AIRFLOW = str(Path(sys.executable).with_name("airflow"))


def _clean_env(extra: Mapping[str, str]) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("RISKPIPE_", "AIRFLOW"))}
    return {**base, **extra}


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An Airflow home whose SQLite metadata DB is migrated once for the whole session."""
    root = tmp_path_factory.mktemp("airflow")
    settings = Settings(data_dir=root / "riskpipe", airflow_home=root / "home")
    proc = subprocess.run([AIRFLOW, "db", "migrate"], env=_clean_env(airflow_env(settings)),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return root / "home"


@dataclass
class DagRunner:
    settings: Settings

    def env(self) -> dict[str, str]:
        return _clean_env(airflow_env(self.settings))

    def test(self, dag_id: str, logical_date: datetime, conf: dict[str, Any] | None = None
             ) -> subprocess.CompletedProcess:
        """`airflow dags test` (in-process executor) with the riskpipe env; asserts the run succeeded."""
        cmd = [AIRFLOW, "dags", "test", dag_id, logical_date.isoformat()]
        if conf is not None:
            cmd += ["--conf", json.dumps(conf)]
        proc = subprocess.run(cmd, env=self.env(), capture_output=True, text=True, timeout=300)
        output = proc.stdout + proc.stderr
        assert proc.returncode == 0, output[-6000:]  # `dags test` exits 1 when the run failed
        return proc


@pytest.fixture
def dag_runner(tmp_path: Path, airflow_home: Path, redis_url: str, broker: str, unique: str) -> Iterator[DagRunner]:
    """Settings for one DAG test: tmp DuckDB, the session Redis and broker, a unique online prefix."""
    settings = Settings(data_dir=tmp_path / "riskpipe", airflow_home=airflow_home, redis_url=redis_url,
                        kafka_bootstrap_servers=broker, online_key_prefix=unique, offline_lock_wait_s=30)
    yield DagRunner(settings)


def _first_alert(broker: str, group_id: str, match: Callable[[dict[str, Any]], bool],
                 polls: int = 60) -> list[dict[str, Any]]:
    """The first event on ``alerts`` that ``match`` accepts, as a one-item list ([] after ``polls`` x 0.5 s).

    Assign, not subscribe: no consumer-group join (slow on the embedded broker) for a read-only check.
    """
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    from riskpipe.topics import ALERTS_TOPIC

    consumer = Consumer({"bootstrap.servers": broker, "group.id": group_id, "enable.auto.commit": False})
    metadata = consumer.list_topics(ALERTS_TOPIC, timeout=10).topics[ALERTS_TOPIC]
    consumer.assign([TopicPartition(ALERTS_TOPIC, p, OFFSET_BEGINNING) for p in metadata.partitions])
    try:
        for _ in range(polls):
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error() and match(event := json.loads(msg.value())):
                return [event]
    finally:
        consumer.close()
    return []


@pytest.fixture
def first_alert() -> Callable[..., list[dict[str, Any]]]:
    """Reads the DAGs' Kafka ``alerts`` (model promotions, monitoring alarms) back for assertions."""
    return _first_alert

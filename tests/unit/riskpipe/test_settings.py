"""Settings: embedded defaults, env overrides, secrets never printed."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from riskpipe.settings import Settings


def test_defaults_are_the_embedded_mode(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path)
    assert s.offline_backend == "duckdb"
    assert s.duckdb_path == tmp_path / "offline.duckdb"
    assert s.airflow_home == tmp_path / "airflow"
    assert s.bootstrap_servers == "127.0.0.1:9092"
    assert s.redis_dsn == "redis://127.0.0.1:6379/0"


def test_environment_overrides_every_port(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RISKPIPE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("RISKPIPE_BROKER_PORT", "19092")
    monkeypatch.setenv("RISKPIPE_REDIS_PORT", "16379")
    monkeypatch.setenv("RISKPIPE_AIRFLOW_API_PORT", "18080")
    s = Settings()
    assert s.bootstrap_servers == "127.0.0.1:19092"
    assert s.redis_dsn.endswith(":16379/0")
    assert s.airflow_url == "http://127.0.0.1:18080"


def test_external_services_replace_local_addresses(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path, kafka_bootstrap_servers="kafka:9092", redis_url="redis://redis:6379/1")
    assert s.bootstrap_servers == "kafka:9092"
    assert s.redis_dsn == "redis://redis:6379/1"


def test_secrets_are_masked_but_children_receive_them(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path, snowflake_password="hunter2", redis_url="redis://u:pw@redis:6379/0")
    shown = s.masked()
    assert shown["snowflake_password"] == "********"
    assert "pw" not in shown["redis_url"] and "pw" not in shown["redis_dsn"]
    assert "hunter2" not in repr(shown)
    assert s.to_env()["RISKPIPE_SNOWFLAKE_PASSWORD"] == "hunter2"


def test_to_env_round_trips(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    original = Settings(data_dir=tmp_path, broker_port=1234, offline_backend="snowflake", snowflake_account="acme")
    for key, value in original.to_env().items():
        monkeypatch.setenv(key, value)
    assert Settings() == original


def test_bad_value_names_the_field(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="offline_backend"):
        Settings(data_dir=tmp_path, offline_backend="postgres")

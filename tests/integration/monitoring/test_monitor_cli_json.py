"""`riskpipe monitor` against the real broker: lag of a group we drive, workers, and the no-run-yet message."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from lag_harness import drive_group
from typer.testing import CliRunner

from riskpipe.cli import app
from riskpipe.settings import get_settings
from riskpipe.stack.net import free_port


@pytest.fixture
def monitor_env(tmp_path: Path, broker: str, unique: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    for name, value in {"DATA_DIR": str(tmp_path / "riskpipe"), "KAFKA_BOOTSTRAP_SERVERS": broker,
                        "STREAM_APP_ID": f"{unique}-stream", "INGEST_GROUP_ID": f"{unique}-ingest",
                        "ARCHIVE_GROUP_ID": f"{unique}-archive",
                        "MONITORING_GROUP_ID": f"{unique}-monitoring", "SERVING_PORT": str(free_port())}.items():
        monkeypatch.setenv(f"RISKPIPE_{name}", value)
    get_settings.cache_clear()
    yield unique
    get_settings.cache_clear()


def test_monitor_json_reports_lag_and_says_what_is_missing(monitor_env: str, broker: str) -> None:
    topic = f"{monitor_env}.features.account_txn_velocity"
    drive_group(broker, topic, f"{monitor_env}-ingest", produced={0: 5}, consumed={0: 2})

    result = CliRunner().invoke(app, ["monitor", "--json", "--interval", "0"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    fig = json.loads(result.output)
    assert fig["lag"]["up"] and fig["lag"]["rows"] == [
        {"group": f"{monitor_env}-ingest", "consumer": "stream-ingest", "topic": topic, "lag": 3}]
    assert fig["serving"]["up"] is False and "riskpipe up serving" in fig["serving"]["hint"]
    assert [w["worker"] for w in fig["workers"]] == ["stream-compute", "stream-ingest", "stream-archive"]
    assert fig["sync"] == {"up": True, "groups": []}
    assert fig["monitoring"]["run"] is None and "riskpipe monitor run" in fig["monitoring"]["message"]


def test_monitor_tables_print_without_a_running_stack(monitor_env: str) -> None:
    result = CliRunner().invoke(app, ["monitor", "--interval", "0"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "stream workers" in result.output and "no monitoring run yet" in result.output
    assert "serving: not reachable" in result.output and "no committed offsets yet" in result.output


def test_monitor_group_mounts_run_and_exporter() -> None:
    import typer

    from monitoring.cli import monitor_app

    assert {"run", "exporter"} <= set(typer.main.get_command(monitor_app).commands)

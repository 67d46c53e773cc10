"""`riskpipe up` failing as a user sees it: real processes on free ports, nothing left behind.

The whole stack's up / status / down on free ports is the end-to-end test (tests/integration/e2e/).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from riskpipe.settings import Settings
from riskpipe.stack.net import free_port
from riskpipe.stack.supervisor import stack_processes

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RISKPIPE = [sys.executable, "-m", "riskpipe"]


def _env(data_dir: Path, **ports: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RISKPIPE_", "AIRFLOW"))}
    env["RISKPIPE_DATA_DIR"] = str(data_dir)
    env.update({f"RISKPIPE_{k.upper()}": str(v) for k, v in ports.items()})
    return env


def _run(args: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*RISKPIPE, *args], env=env, capture_output=True, text=True, timeout=timeout)


def test_unhealthy_service_fails_up_with_log_and_hint(tmp_path: Path) -> None:
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    env = _env(tmp_path / "rp", redis_port=blocker.getsockname()[1])
    try:
        result = _run(["up", "redis"], env, timeout=60)
    finally:
        blocker.close()
        _run(["down"], env)
    assert result.returncode == 1
    out = result.stdout + result.stderr
    assert "redis" in out and "last lines" in out and "RISKPIPE_REDIS_PORT" in out
    assert not stack_processes(Settings(data_dir=tmp_path / "rp"))


def test_unknown_service_is_a_one_line_error(tmp_path: Path) -> None:
    result = _run(["up", "nope"], _env(tmp_path / "rp"), timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "unknown service 'nope'" in result.stderr


def test_demo_without_a_running_stack_is_a_one_line_error(tmp_path: Path) -> None:
    env = _env(tmp_path / "rp", broker_port=free_port(), serving_port=free_port(), airflow_api_port=free_port())
    result = _run(["demo"], env, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip().count("\n") == 0
    assert "the stack is not running" in result.stderr and "make up" in result.stderr

"""`riskpipe up | status | down` as a user runs them: real processes on free ports, nothing left behind."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from riskpipe.stack.net import free_port, port_open

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RISKPIPE = [sys.executable, "-m", "riskpipe"]


def _env(data_dir: Path, **ports: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RISKPIPE_", "AIRFLOW"))}
    env["RISKPIPE_DATA_DIR"] = str(data_dir)
    env.update({f"RISKPIPE_{k.upper()}": str(v) for k, v in ports.items()})
    return env


def _run(args: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*RISKPIPE, *args], env=env, capture_output=True, text=True, timeout=timeout)


def _stack_procs(data_dir: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("RISKPIPE_STACK") == str(data_dir):
                found.append(proc)
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return found


def test_full_stack_up_status_down(tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("broker_port", "redis_port", "airflow_api_port",
                                             "airflow_worker_log_port", "airflow_trigger_log_port", "serving_port")}
    env = _env(tmp_path / "rp", **ports)
    try:
        first = _run(["up"], env)
        assert first.returncode == 0, first.stdout + first.stderr

        status = _run(["status", "--json"], env)
        rows = {r["name"]: r for r in json.loads(status.stdout)}
        assert set(rows) == {"broker", "topics", "redis", "offline-store", "airflow",
                             "stream-compute", "stream-ingest", "stream-archive", "serving"}
        assert all(r["healthy"] for r in rows.values()), rows
        assert rows["airflow"]["credentials"].startswith("admin / ")
        assert (tmp_path / "rp" / "offline.duckdb").exists()

        again = _run(["up"], env)
        assert again.returncode == 0
        assert again.stdout.count("already running") == 7  # broker, redis, airflow, three stream workers, serving
        assert all(rows[w]["progress"] for w in ("stream-compute", "stream-ingest", "stream-archive"))

        pids = [r["pid"] for r in rows.values() if r["pid"]]
        assert _stack_procs(tmp_path / "rp"), "the marker should find the running stack"
    finally:
        down = _run(["down"], env)
    assert down.returncode == 0, down.stderr
    assert not _stack_procs(tmp_path / "rp")
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids)
    assert not any(port_open("127.0.0.1", p) for p in ports.values())
    assert _run(["status"], env).returncode == 3  # nothing healthy


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
    assert not _stack_procs(tmp_path / "rp")


def test_unknown_service_is_a_one_line_error(tmp_path: Path) -> None:
    result = _run(["up", "nope"], _env(tmp_path / "rp"), timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "unknown service 'nope'" in result.stderr

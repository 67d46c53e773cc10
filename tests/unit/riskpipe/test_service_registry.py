"""The service registry: dependency order, enablement, and the shape rules of a Service."""

from __future__ import annotations

from pathlib import Path

import pytest

from riskpipe.settings import Settings
from riskpipe.stack import services
from riskpipe.stack.service import Service, ServiceState


def test_start_order_respects_dependencies(tmp_path: Path) -> None:
    names = [s.name for s in services.ordered(Settings(data_dir=tmp_path))]
    for svc in services.REGISTRY.values():
        for dep in svc.depends_on:
            assert names.index(dep) < names.index(svc.name)


def test_selecting_a_service_pulls_in_its_dependencies(tmp_path: Path) -> None:
    names = [s.name for s in services.ordered(Settings(data_dir=tmp_path), ["topics"])]
    assert names == ["broker", "topics"]


def test_external_kafka_and_redis_are_not_started(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path, kafka_bootstrap_servers="k:9092", redis_url="redis://r:6379/0")
    names = [svc.name for svc in services.ordered(s)]
    assert "broker" not in names and "redis" not in names and "topics" in names


def test_unknown_service_raises_keyerror(tmp_path: Path) -> None:
    with pytest.raises(KeyError):
        services.ordered(Settings(data_dir=tmp_path), ["nope"])


def test_service_is_either_process_or_setup() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        Service(name="x", description="", address=lambda s: "", health=lambda s: True)


def test_register_rejects_unknown_dependency() -> None:
    svc = Service(name="x", description="", address=lambda s: "", health=lambda s: True,
                  setup=lambda s: None, depends_on=("missing",))
    with pytest.raises(ValueError, match="unregistered"):
        services.register(svc)


def test_state_round_trip(tmp_path: Path) -> None:
    state = ServiceState("redis", 42, 1000.0, "redis://x", ["redis-server"])
    state.save(tmp_path)
    assert ServiceState.load(tmp_path, "redis") == state
    state.forget(tmp_path)
    assert ServiceState.load(tmp_path, "redis") is None

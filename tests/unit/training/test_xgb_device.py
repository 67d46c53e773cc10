"""Device choice: auto-detection (monkeypatched probes) and the CUDA -> CPU fallback on this GPU-less box."""

from __future__ import annotations

import warnings

import pytest

from training import device
from training.device import DeviceFallbackWarning, resolve_device


@pytest.fixture
def probes(monkeypatch: pytest.MonkeyPatch):
    """Control the three probes; the cache is cleared around each test."""
    state = {"build": True, "driver": True, "train": True, "calls": []}

    def probe(name: str):
        def run() -> bool:
            state["calls"].append(name)
            return state[name]
        return run

    monkeypatch.setattr(device, "_build_has_cuda", probe("build"))
    monkeypatch.setattr(device, "_driver_lists_gpu", probe("driver"))
    monkeypatch.setattr(device, "_tiny_cuda_train", probe("train"))
    device.cuda_available.cache_clear()
    yield state
    device.cuda_available.cache_clear()


def test_auto_picks_cuda_only_when_every_probe_passes(probes) -> None:
    assert resolve_device("auto") == "cuda"
    assert probes["calls"] == ["build", "driver", "train"]


@pytest.mark.parametrize("failing", ["build", "driver", "train"])
def test_auto_falls_back_quietly_when_a_probe_fails(probes, failing: str) -> None:
    probes[failing] = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # auto must not warn: CPU is a normal outcome
        assert resolve_device("auto") == "cpu"
    # cheap probes first: a failed build check never runs the driver or the training probe
    assert probes["calls"][-1] == failing


def test_cuda_without_gpu_warns_and_uses_cpu(probes) -> None:
    probes["driver"] = False
    with pytest.warns(DeviceFallbackWarning, match="no usable GPU"):
        assert resolve_device("cuda") == "cpu"


def test_cpu_never_probes(probes) -> None:
    assert resolve_device("cpu") == "cpu"
    assert probes["calls"] == []


def test_unknown_device_is_a_usage_error() -> None:
    from riskpipe.errors import UsageError

    with pytest.raises(UsageError, match="tpu"):
        resolve_device("tpu")


def test_real_probe_on_this_machine_is_consistent() -> None:
    """Unpatched: on a GPU-less machine (this one, CI) cuda falls back; on a GPU box it is kept."""
    device.cuda_available.cache_clear()
    if device.cuda_available():
        assert resolve_device("cuda") == "cuda"
    else:
        with pytest.warns(DeviceFallbackWarning):
            assert resolve_device("cuda") == "cpu"

"""NVML readings: one init per process, [] where NVML fails (this machine), values mapped per GPU."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest

from riskpipe import gpu


@pytest.fixture
def fresh_nvml():
    gpu._nvml.cache_clear()
    yield
    gpu._nvml.cache_clear()


def test_no_driver_means_no_readings_and_one_init(fresh_nvml, monkeypatch) -> None:
    calls = []

    def init() -> None:
        calls.append(1)
        raise RuntimeError("NVML Shared Library Not Found")

    monkeypatch.setitem(sys.modules, "pynvml", SimpleNamespace(nvmlInit=init))
    assert gpu.gpu_readings() == [] and gpu.gpu_readings() == [] and not gpu.gpu_available()
    assert calls == [1]


def test_readings_per_gpu(fresh_nvml, monkeypatch) -> None:
    fake = SimpleNamespace(
        nvmlInit=lambda: None, nvmlDeviceGetCount=lambda: 2, nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetUtilizationRates=lambda h: SimpleNamespace(gpu=[35, 80][h]),
        nvmlDeviceGetMemoryInfo=lambda h: SimpleNamespace(used=[1e9, 2e9][h]))
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    assert gpu.gpu_readings() == [gpu.GpuReading(0, 35.0, 1e9), gpu.GpuReading(1, 80.0, 2e9)]
    assert gpu.gpu_available()

"""GPU readings through NVML, for the scoring service's metrics and the metrics exporter.

NVML is initialised once per process. On a machine without an NVIDIA driver every call returns
``[]``, and after the first call that costs nothing: the metrics that need these readings are
simply absent there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GpuReading:
    index: int
    utilization_percent: float
    memory_used_bytes: float


@lru_cache(maxsize=1)
def _nvml() -> Any:
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # no package, no driver or no GPU: all the same to a metrics reader
        log.info("no GPU/NVML: GPU metrics stay absent")
        return None
    return pynvml


def gpu_available() -> bool:
    return _nvml() is not None


def gpu_readings() -> list[GpuReading]:
    """Utilization and memory of every GPU NVML sees; [] without one."""
    nv = _nvml()
    if nv is None:
        return []
    readings = []
    for i in range(nv.nvmlDeviceGetCount()):
        handle = nv.nvmlDeviceGetHandleByIndex(i)
        readings.append(GpuReading(i, float(nv.nvmlDeviceGetUtilizationRates(handle).gpu),
                                   float(nv.nvmlDeviceGetMemoryInfo(handle).used)))
    return readings

"""Machine details recorded with every benchmark result, so numbers are never read without context."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

DEFAULT_PACKAGES = ("duckdb", "redis", "confluent-kafka", "faust-streaming", "pyarrow", "pandas", "polars",
                    "xgboost", "bentoml", "apache-airflow")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_sha() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        return None


def _gpus() -> list[str]:
    """``nvidia-smi`` names and memory of the GPUs, [] where there is no NVIDIA driver."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()] if out.returncode == 0 else []


def machine_info(packages: tuple[str, ...] = DEFAULT_PACKAGES) -> dict[str, Any]:
    """CPU, cores, memory, GPUs, OS, Python, package versions, git commit and load at the time of the run."""
    versions: dict[str, str | None] = {}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_model": _cpu_model(),
        "cpu_cores_logical": os.cpu_count(),
        "cpu_cores_physical": psutil.cpu_count(logical=False),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "gpus": _gpus(),
        "load_avg_1m": os.getloadavg()[0],
        "os": platform.platform(),
        "python": platform.python_version(),
        "git_sha": _git_sha(),
        "packages": versions,
    }

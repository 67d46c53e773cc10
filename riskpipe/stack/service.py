"""What the local supervisor knows about a service, and what it remembers about a running one.

A service is either a long-running process (``command``) or a one-shot setup step
(``setup``, e.g. creating topics or the offline schema) that has no process but still
has a health check, so ``riskpipe status`` can say whether it holds.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from riskpipe.settings import Settings

SettingsFn = Callable[[Settings], object]


@dataclass(frozen=True)
class Service:
    """One entry of the service registry.

    ``enabled`` lets a service step aside when production points elsewhere (an external
    Kafka means no local broker). ``hint`` is printed when the health check fails: it
    tells the user what usually goes wrong with this service.
    """

    name: str
    description: str
    address: Callable[[Settings], str]
    health: Callable[[Settings], bool]
    command: Callable[[Settings], list[str]] | None = None
    setup: Callable[[Settings], None] | None = None
    env: Callable[[Settings], Mapping[str, str]] = lambda _s: {}
    depends_on: tuple[str, ...] = ()
    enabled: Callable[[Settings], bool] = lambda _s: True
    start_timeout_s: float = 30.0
    stop_timeout_s: float = 15.0
    hint: str = ""
    credentials: Callable[[Settings], str] | None = None
    progress: Callable[[Settings], str] | None = None  # one line for `riskpipe status` (workers: counts, freshness)

    def __post_init__(self) -> None:
        if (self.command is None) == (self.setup is None):
            raise ValueError(f"service {self.name!r}: give exactly one of command (process) or setup (one-shot)")

    @property
    def is_process(self) -> bool:
        return self.command is not None


@dataclass
class ServiceState:
    """What ``up`` wrote down about a started service; ``down`` and ``status`` read it back."""

    name: str
    pid: int | None
    started_at: float
    address: str
    command: list[str] = field(default_factory=list)

    @staticmethod
    def path(run_dir: Path, name: str) -> Path:
        return run_dir / f"{name}.json"

    def save(self, run_dir: Path) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.path(run_dir, self.name).with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self)))
        os.replace(tmp, self.path(run_dir, self.name))

    @classmethod
    def load(cls, run_dir: Path, name: str) -> ServiceState | None:
        try:
            return cls(**json.loads(cls.path(run_dir, name).read_text()))
        except (FileNotFoundError, json.JSONDecodeError, TypeError):
            return None

    def forget(self, run_dir: Path) -> None:
        self.path(run_dir, self.name).unlink(missing_ok=True)

    @property
    def uptime_s(self) -> float:
        return time.time() - self.started_at

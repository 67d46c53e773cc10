"""The production model, swapped without a restart and without failing requests in flight.

The holder keeps ONE reference to an immutable ``LoadedModel`` (booster + metadata). A request
reads the reference once and scores with that object to the end, so a swap in the middle of a
request cannot mix two models; a swap is a single attribute assignment (atomic under the GIL).
A background thread polls the production pointer (``training.promotion``, the source of truth)
every few seconds, and ``serving.promotion_events`` calls ``refresh`` at once on a ``model.promoted``
event; loading happens off the request path, and a model that fails to load leaves the current
one serving.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime

from riskpipe.errors import UsageError
from riskpipe.settings import Settings
from training.device import resolve_device
from training.model import FraudModel

log = logging.getLogger(__name__)


class NoProductionModel(RuntimeError):
    """Nothing promoted yet: /score answers 503 with this message."""

    def __init__(self) -> None:
        super().__init__("no production model; run `riskpipe train`")


@dataclass(frozen=True)
class LoadedModel:
    tag: str
    model: FraudModel
    device: str
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def version(self) -> str:
        return self.tag.split(":", 1)[-1]


def load_model(settings: Settings, tag: str, device: str) -> LoadedModel:
    from training import model_store

    model = model_store.load(settings, tag)  # CPU, few threads (prepare_for_scoring)
    # One request is one row: extra OpenMP threads only spin (and fight the event loop for the core).
    model.booster.set_param({"nthread": 1, **({"device": "cuda"} if device == "cuda" else {})})
    return LoadedModel(tag=tag, model=model, device=device)


class ModelHolder:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.device = resolve_device(settings.serving_device)
        self._current: LoadedModel | None = None
        self._refresh_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.swaps = 0

    @property
    def current(self) -> LoadedModel | None:
        return self._current

    def require(self) -> LoadedModel:
        current = self._current
        if current is None:
            raise NoProductionModel()
        return current

    def refresh(self, trigger: str = "poll") -> bool:
        """Load the production model if it changed; True when a new one was swapped in.

        ``trigger`` (poll, event, start) only goes to the log: it shows whether events arrive."""
        from training.promotion import production_tag

        with self._refresh_lock:
            try:
                tag = production_tag(self.settings)
            except UsageError as exc:  # a corrupt pointer: keep serving what we have
                log.error("cannot read the production pointer", extra={"error": str(exc)})
                return False
            current = self._current
            if tag is None or (current is not None and current.tag == tag):
                return False
            try:
                loaded = load_model(self.settings, tag, self.device)
            except Exception as exc:  # keep the running model whatever went wrong with the new one
                log.exception("loading the production model failed; keeping the current one",
                              extra={"tag": tag, "error": str(exc)[:200]})
                return False
            self._current = loaded
            self.swaps += 1
            log.info("production model loaded",
                     extra={"tag": tag, "previous": current.tag if current else None, "trigger": trigger})
            return True

    def start(self, interval_s: float | None = None) -> None:
        """Load now, then poll in a daemon thread."""
        self.refresh("start")
        interval = interval_s or self.settings.serving_reload_interval_s

        def loop() -> None:
            while not self._stop.wait(interval):
                self.refresh()

        self._thread = threading.Thread(target=loop, name="model-reload", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

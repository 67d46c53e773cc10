"""History mode: simulate days of activity as fast as possible into the lake and offline store.

Windows are at most a day and shrink for big populations so a window never holds more than
~2M events (bounded memory for 30+ days x 100k accounts). Labels whose ``label_time`` falls
inside the horizon are written; the rest are reported as "not yet known", exactly like a
real extract taken at the horizon's end.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from events.contracts import FraudLabel
from events.simulator.config import SimulationConfig
from events.simulator.engine import TRUTH_TABLE, US_PER_DAY, Batch, Simulator, to_us
from events.simulator.legit import US_PER_HOUR
from events.sinks import HistoryWriter
from riskpipe.settings import Settings

log = logging.getLogger(__name__)

MAX_EVENTS_PER_WINDOW = 1_000_000


@dataclass
class HistoryReport:
    rows: dict[str, int] = field(default_factory=dict)
    events: int = 0
    labels: int = 0
    fraud_events: int = 0
    labels_not_yet_known: int = 0
    events_past_horizon: int = 0
    seconds: float = 0.0

    @property
    def events_per_second(self) -> float:
        return (self.events + self.labels) / self.seconds if self.seconds else 0.0


def window_us(config: SimulationConfig) -> int:
    """Whole hours holding about ``MAX_EVENTS_PER_WINDOW`` events (1 hour to 1 week): big windows
    amortize per-window costs, the cap bounds memory whatever the population."""
    per_hour = config.accounts * config.rate * 1.1 / 24
    hours = max(1, min(24 * 7, int(MAX_EVENTS_PER_WINDOW / max(per_hour, 1e-9))))
    return hours * US_PER_HOUR


def history_windows(config: SimulationConfig) -> list[tuple[int, int]]:
    """Consecutive [t0, t1) windows (microseconds) covering the horizon."""
    start = to_us(config.start)
    end = start + int(config.days * US_PER_DAY)
    step = window_us(config)
    return [(t0, min(t0 + step, end)) for t0 in range(start, end, step)]


def history_batches(sim: Simulator) -> Iterator[Batch]:
    """The horizon window by window (for callers that stream batches somewhere else)."""
    for t0, t1 in history_windows(sim.config):
        yield sim.step(t0, t1)


def run_history(config: SimulationConfig, settings: Settings, *, lake: bool = True, offline: bool = True,
                progress: Callable[[float], None] | None = None, sim: Simulator | None = None) -> HistoryReport:
    """Generate the whole horizon and write it; ``progress`` gets the finished fraction after each window."""
    sim = sim or Simulator(config)
    report = HistoryReport()
    started = time.perf_counter()
    total_windows = len(history_windows(config))
    done = 0
    with HistoryWriter(settings, lake=lake, offline=offline) as writer:
        for batch in history_batches(sim):
            writer.write_events(batch.tables, [(TRUTH_TABLE, "_ground_truth", batch.truth)])
            report.events += batch.events
            report.labels += batch.labels
            report.fraud_events += batch.truth.num_rows
            done += 1
            log.info("simulated window", extra={"window": done, "of": total_windows, "events": batch.events,
                                                "labels": batch.tables[FraudLabel].num_rows})
            if progress is not None:
                progress(done / total_windows)
        writer.flush()
        report.rows = dict(writer.rows)
    report.labels_not_yet_known = sim.pending_labels()
    report.events_past_horizon = sim.pending_events()
    report.seconds = time.perf_counter() - started
    return report

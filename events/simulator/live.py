"""Live mode: produce simulated events to Kafka at a target rate with event time = now.

Each tick simulates the wall-clock window since the previous tick, so the event rate
follows the configured rate however long producing took, and events always carry a time
in the past (never ahead of the clock). Labels come out only once their ``label_time`` has
passed (the engine holds them), which in a short demo means few labels: pass
``--label-delay-median`` in hours (fractions allowed) to see them sooner.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import pyarrow as pa

from events.contracts import Event
from events.producer import DeliveryStats, EventProducer
from events.simulator.engine import Simulator
from events.sinks import produce_in_time_order

log = logging.getLogger(__name__)


@dataclass
class LiveReport:
    produced: Counter[str] = field(default_factory=Counter)
    ticks: int = 0
    seconds: float = 0.0
    labels_pending: int = 0
    delivery: DeliveryStats | None = None

    @property
    def events_per_second(self) -> float:
        return sum(self.produced.values()) / self.seconds if self.seconds else 0.0


def run_live(sim: Simulator, producer: EventProducer, *, duration_s: float | None = None,
             max_events: int | None = None, tick_s: float = 0.5, clock: Callable[[], float] = time.time,
             sleep: Callable[[float], None] = time.sleep,
             on_tick: Callable[[LiveReport], None] | None = None,
             before_produce: Callable[[Mapping[type[Event], pa.Table]], None] | None = None) -> LiveReport:
    """Run until ``duration_s`` passed or ``max_events`` were produced (or KeyboardInterrupt).

    ``before_produce`` sees each tick's events before they go to Kafka (the payment gateway
    scores transactions there, see ``events.live_scoring``).
    """
    report = LiveReport()
    started = time.perf_counter()
    last = int(clock() * 1_000_000)
    try:
        while True:
            sleep(tick_s)
            now = int(clock() * 1_000_000)
            if now <= last:
                continue
            batch = sim.step(last, now)
            last = now
            if before_produce is not None:
                before_produce(batch.tables)
            report.produced.update(produce_in_time_order(producer, batch.tables))
            producer.poll(0)
            report.ticks += 1
            if on_tick is not None:
                on_tick(report)
            if duration_s is not None and time.perf_counter() - started >= duration_s:
                break
            if max_events is not None and sum(report.produced.values()) >= max_events:
                break
    except KeyboardInterrupt:
        log.info("live simulation interrupted")
    report.delivery = producer.flush()
    report.seconds = time.perf_counter() - started
    report.labels_pending = sim.pending_labels()
    return report

"""Small simulated histories for the training tests, the DAG test and the benchmark.

One helper so every caller loads the same kind of data the same way: the raw tables are
created first (``ensure_schema``), then the simulator's history mode writes events and the
labels known by the end of the horizon into the settings' offline store (no lake).
"""

from __future__ import annotations

from datetime import UTC, datetime

from events.simulator.config import LabelDelay, SimulationConfig, default_regimes
from events.simulator.history import HistoryReport, run_history
from riskpipe.settings import Settings
from riskpipe.stack.offline import ensure_schema

START = datetime(2024, 3, 1, tzinfo=UTC)


def simulate_history(settings: Settings, *, accounts: int = 300, days: float = 6.0, seed: int = 3,
                     fraud_rate: float = 0.02, start: datetime = START) -> HistoryReport:
    """Simulate ``days`` of activity with short label delays (median 6 h) so a small window has labels."""
    ensure_schema(settings)
    config = SimulationConfig(
        seed=seed, accounts=accounts, days=days, start=start, fraud_rate=fraud_rate,
        regimes=default_regimes(days, 1),
        label_delay=LabelDelay(median_hours=6.0, sigma=0.8, min_hours=1.0, max_days=3.0, never_rate=0.05),
    )
    return run_history(config, settings, lake=False)

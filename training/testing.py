"""Small data sets for the training tests, the DAG test, the GPU checks and the benchmark.

``simulate_history``: one helper so every caller loads the same kind of data the same way: the raw
tables are created first (``ensure_schema``), then the simulator's history mode writes events and
the labels known by the end of the horizon into the settings' offline store (no lake).
``synthetic_training_set``: a store-free frame with a known signal, for tests of the learner itself
(CPU and CUDA) that must not depend on the simulator's tuning.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from events.simulator.config import LabelDelay, SimulationConfig, default_regimes
from events.simulator.history import HistoryReport, run_history
from riskpipe.settings import Settings
from riskpipe.stack.offline import ensure_schema
from training.config import TrainingConfig
from training.dataset import TrainingSet, assign_split

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


SYNTHETIC_FEATURES = ["amount", "txn_count_1h", "signal_score", "is_new_device"]


def synthetic_config(**overrides: object) -> TrainingConfig:
    """A 10-day window from ``START`` with a 12 h gap, small and seeded: fast, repeatable learner tests."""
    start = START.replace(tzinfo=None)
    values: dict[str, object] = {"start": start, "end": start + timedelta(days=10), "gap": timedelta(hours=12),
                                 "device": "cpu", "num_boost_round": 60, "early_stopping_rounds": 10, "seed": 11}
    return TrainingConfig(**{**values, **overrides})


def synthetic_training_set(config: TrainingConfig, n: int = 4000, seed: int = 0) -> TrainingSet:
    """Fraud (~3%) has a higher ``signal_score`` and more new devices; the rest is noise."""
    rng = np.random.default_rng(seed)
    label = (rng.random(n) < 0.03).astype("int64")
    times = pd.Series(pd.to_datetime(config.start) + pd.to_timedelta(np.sort(rng.random(n)) * 10, unit="D"))
    frame = pd.DataFrame({
        "event_id": [f"e{i}" for i in range(n)],
        "account_id": [f"a{i % 150}" for i in range(n)],
        "event_time": times,
        "txn_type": rng.choice(["card_payment", "withdrawal"], n),
        "amount": rng.lognormal(3, 1, n),
        "label": label,
        "fraud_type": np.where(label == 1, rng.choice(["ato", "stolen_payment"], n), None),
        "txn_count_1h": rng.poisson(2, n),
        "signal_score": rng.normal(label * 2.5, 1.0),
        "is_new_device": (rng.random(n) < 0.1 + 0.6 * label),
    })
    frame["split"] = assign_split(frame["event_time"], config)
    frame = frame[frame["split"] != "gap"].reset_index(drop=True)
    return TrainingSet(frame=frame, feature_columns=SYNTHETIC_FEATURES)

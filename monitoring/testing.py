"""Served traffic for the monitoring tests and the demo: a simulated history, a real model, a replayed log.

``simulate_with_regimes`` writes a seeded history whose fraud regime changes on a given day (the
simulator's drift injection); ``materialize`` backfills feature history (what ingestion writes live);
``train_production`` runs the real training stages on a window and promotes the model (so it has a
``run_id`` and a training frame: the drift reference); ``drift_scenario`` chains the three;
``replay_served`` scores the transactions of a later window with that model and logs each one
through serving's ``PredictionLogger`` in the scorer's record format, ``served_at`` = the
transaction's time (as if served live then). Feature values come from the same point-in-time
builder training uses, i.e. what a correct online store would have served.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from events.simulator.config import LabelDelay, Regime, SimulationConfig
from events.simulator.history import HistoryReport, run_history
from riskpipe.settings import Settings
from riskpipe.stack.offline import ensure_schema
from training.config import TrainingConfig

START = datetime(2024, 3, 1, tzinfo=UTC)
BASELINE = Regime(name="baseline", start_day=0.0, mix={"ato": 0.5, "p2p_scam": 0.5})


def fraud_wave(start_day: float) -> Regime:
    """An injected drift regime: stolen cards tested every second and ATO accounts drained in minutes."""
    return Regime(name="fraud_wave", start_day=start_day, mix={"stolen_payment": 0.6, "ato": 0.4},
                  card_test_interval_s=1.0, card_tests_per_incident=(20, 40), ato_drain_interval_s=5.0)


def simulate_with_regimes(settings: Settings, regimes: list[Regime], *, accounts: int = 150, days: float = 5.0,
                          seed: int = 5, fraud_rate: float = 0.1) -> HistoryReport:
    """A seeded history (short label delays) into the settings' offline store."""
    ensure_schema(settings)
    config = SimulationConfig(seed=seed, accounts=accounts, days=days, start=START, fraud_rate=fraud_rate,
                              regimes=regimes,
                              label_delay=LabelDelay(median_hours=6.0, sigma=0.8, min_hours=1.0, max_days=3.0,
                                                     never_rate=0.05))
    return run_history(config, settings, lake=False)


def day(offset: float) -> datetime:
    return (START + timedelta(days=offset)).replace(tzinfo=None)


def materialize(settings: Settings, groups: tuple[str, ...], first_day: float, last_day: float) -> int:
    """Backfill the groups' offline history (what stream ingestion writes live), so skew can be recomputed."""
    from features.batch.engine import compute_group
    from features.definitions.catalog import get_group
    from features.offline_access import offline_session

    with offline_session(settings) as store:
        return sum(compute_group(store, get_group(g), day(first_day), day(last_day)) for g in groups)


def train_production(settings: Settings, first_day: float, last_day: float, groups: tuple[str, ...]) -> str:
    """Build -> train -> evaluate -> register over ``[first_day, last_day)`` and promote; returns the tag."""
    from training import pipeline
    from training.promotion import set_production

    config = TrainingConfig.from_settings(settings, start=day(first_day), end=day(last_day), gap=timedelta(hours=1),
                                          device="cpu", num_boost_round=40, early_stopping_rounds=10, nthread=1,
                                          feature_groups=groups)
    run_dir = pipeline.build(settings, config)
    pipeline.train(run_dir)
    pipeline.evaluate(run_dir)
    tag = pipeline.register(settings, run_dir)
    set_production(settings, tag, reason="monitoring test")
    return tag


DRIFT_DAY = 4.0  # the scenario's fraud_wave starts here; day 3 is the stationary control
SCENARIO_GROUPS = ("account_txn_velocity",)  # short windows: stationary within a 5-day history


def drift_scenario(settings: Settings) -> str:
    """The monitoring tests' world: baseline regime, ``fraud_wave`` from day 4, features materialized, a model
    trained on days 1-3 promoted (day 0 is left out: 24 h windows are still filling up). Returns its tag."""
    simulate_with_regimes(settings, [BASELINE, fraud_wave(DRIFT_DAY)])
    materialize(settings, SCENARIO_GROUPS, 0.0, DRIFT_DAY + 1)
    return train_production(settings, 1.0, DRIFT_DAY - 1, SCENARIO_GROUPS)


def window_frame(settings: Settings, first_day: float, last_day: float,
                 groups: tuple[str, ...] = SCENARIO_GROUPS) -> pd.DataFrame:
    """Every transaction of ``[first_day, last_day)`` with its point-in-time features (no split dropped)."""
    from features.offline_access import offline_session
    from training.dataset import build_training_set

    config = TrainingConfig(start=day(first_day), end=day(last_day), gap=timedelta(0), feature_groups=groups)
    with offline_session(settings) as store:
        return build_training_set(store, config).frame


def replay_served(settings: Settings, frame: pd.DataFrame, tag: str) -> int:
    """Score ``frame`` with the model ``tag`` and log every row to the prediction log; returns rows sent."""
    from serving.prediction_log import PredictionLogger, prediction_record
    from training import model_store

    model = model_store.load(settings, tag)
    scores = model.predict(frame)
    decisions = model.thresholds.decide(scores) if model.thresholds else ["allow"] * len(frame)
    logger = PredictionLogger.from_settings(settings)
    features = frame[model.feature_columns].astype(float)
    for i, row in enumerate(frame.itertuples(index=False)):
        at = pd.Timestamp(row.event_time).tz_localize(UTC).to_pydatetime()
        logger.log(row.account_id, prediction_record(
            served_at=at, event_id=row.event_id, account_id=row.account_id, event_time=at, model_tag=tag,
            score=scores[i], decision=str(decisions[i]), degraded=False, columns=model.feature_columns,
            values=features.iloc[i].to_numpy()))
    left = logger.close(30)
    if left:
        raise RuntimeError(f"{left} prediction-log records were not delivered")
    return len(frame) - logger.dropped

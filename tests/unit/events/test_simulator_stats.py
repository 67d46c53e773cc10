"""The simulator produces what it is configured to: fraud rate, scenario mix, label delays, drift.

Runs are in memory (no stores) and sized so the statistics are tight enough for the
tolerances below while the module stays within a few seconds.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from events.contracts import AccountChange, FraudLabel, Login, Transaction
from events.simulator.config import LabelDelay, Regime, SimulationConfig, default_regimes
from events.simulator.engine import US_PER_DAY, Simulator, to_us
from events.simulator.history import history_batches

START = datetime(2026, 1, 1, tzinfo=UTC)
MIX = {"ato": 0.3, "p2p_scam": 0.3, "stolen_payment": 0.4}


def _run(config: SimulationConfig) -> tuple[dict, pa.Table, Simulator]:
    sim = Simulator(config)
    batches = list(history_batches(sim))
    tables = {m: pa.concat_tables([b.tables[m] for b in batches]) for m in batches[0].tables}
    return tables, pa.concat_tables([b.truth for b in batches]), sim


@pytest.fixture(scope="module")
def steady():
    """One regime, 2% fraud, 10k accounts x 4 days (~700k events)."""
    cfg = SimulationConfig(seed=11, accounts=10_000, days=4, start=START, fraud_rate=0.02,
                           regimes=[Regime(name="only", start_day=0, mix=MIX)],
                           label_delay=LabelDelay(median_hours=30, sigma=1.0, never_rate=0.15))
    return (cfg, *_run(cfg))


def _fraud_txns(truth: pa.Table) -> pa.Table:
    return truth.filter(pc.equal(truth["event_topic"], Transaction.topic))


def test_fraud_rate_matches_configuration(steady) -> None:
    cfg, tables, truth, _ = steady
    rate = _fraud_txns(truth).num_rows / tables[Transaction].num_rows
    assert rate == pytest.approx(cfg.fraud_rate, rel=0.12)


def test_scenario_mix_matches_configuration(steady) -> None:
    _, _, truth, _ = steady
    fraud = _fraud_txns(truth)
    counts = dict(zip(*np.unique(fraud["fraud_type"].to_numpy(zero_copy_only=False), return_counts=True),
                      strict=True))
    for fraud_type, share in MIX.items():
        assert counts[fraud_type] / fraud.num_rows == pytest.approx(share, abs=0.06), fraud_type


def test_label_delays_follow_the_configured_distribution(steady) -> None:
    cfg, _, truth, _ = steady
    fraud = _fraud_txns(truth)
    never = fraud["label_time"].null_count / fraud.num_rows
    assert never == pytest.approx(cfg.label_delay.never_rate, abs=0.03)
    known = fraud.filter(pc.is_valid(fraud["label_time"]))
    hours = (pc.subtract(known["label_time"], known["event_time"]).cast(pa.int64()).to_numpy() / 3.6e9)
    assert np.median(hours) == pytest.approx(cfg.label_delay.median_hours, rel=0.1)
    assert hours.min() >= cfg.label_delay.min_hours
    # log-normal shape: the 84th percentile sits one sigma above the median in log space
    assert np.log(np.percentile(hours, 84.1) / np.median(hours)) == pytest.approx(cfg.label_delay.sigma, abs=0.12)


def test_labels_are_emitted_only_inside_the_horizon_and_for_real_fraud(steady) -> None:
    cfg, tables, truth, sim = steady
    labels = tables[FraudLabel]
    horizon = to_us(cfg.start) + int(cfg.days * US_PER_DAY)
    assert labels.num_rows > 0
    assert pc.max(labels["label_time"]).cast(pa.int64()).as_py() < horizon
    assert pc.all(pc.greater_equal(labels["label_time"], labels["event_time"])).as_py()
    assert pc.all(pc.is_in(labels["event_id"], truth["event_id"])).as_py()
    assert pc.all(pc.is_in(labels["event_id"], tables[Transaction]["event_id"])).as_py()
    labelled_in_truth = _fraud_txns(truth).filter(pc.is_valid(_fraud_txns(truth)["label_time"]))
    assert labels.num_rows + sim.pending_labels() == labelled_in_truth.num_rows


def test_events_carry_unique_ids_and_contract_values(steady) -> None:
    _, tables, _, _ = steady
    for model in (Transaction, Login, AccountChange):
        table = tables[model]
        assert pc.count_distinct(table["event_id"]).as_py() == table.num_rows
        sample = table.slice(0, 200).to_pylist()
        for row in sample:  # the contract accepts what the vectorized generator produced
            row["event_time"] = row["event_time"].replace(tzinfo=UTC)
            model.model_validate(row)
    txn = tables[Transaction]
    assert pc.min(txn["amount"]).as_py() > 0


def test_same_seed_same_output_and_other_seed_differs() -> None:
    cfg = SimulationConfig(seed=5, accounts=500, days=2, start=START, fraud_rate=0.05)
    first, truth1, _ = _run(cfg)
    second, truth2, _ = _run(cfg)
    for model in first:
        assert first[model].equals(second[model]), model.__name__
    assert truth1.equals(truth2)
    other, _, _ = _run(cfg.model_copy(update={"seed": 6}))
    assert not other[Transaction].equals(first[Transaction])


def test_drift_regimes_change_the_measurable_mix_and_tactics() -> None:
    days = 6.0
    cfg = SimulationConfig(seed=3, accounts=6_000, days=days, start=START, fraud_rate=0.03,
                           regimes=default_regimes(days, 3))
    tables, truth, _ = _run(cfg)
    fraud = _fraud_txns(truth)
    by_regime = {}
    for name in ("baseline", "scam_wave", "evasive"):
        rows = fraud.filter(pc.equal(fraud["regime"], name))
        kinds = rows["fraud_type"].to_numpy(zero_copy_only=False)
        by_regime[name] = {k: float(np.mean(kinds == k)) for k in MIX}
    assert by_regime["scam_wave"]["p2p_scam"] > by_regime["baseline"]["p2p_scam"] + 0.2
    assert by_regime["evasive"]["stolen_payment"] > by_regime["scam_wave"]["stolen_payment"] + 0.15

    # card testing slowed down: gaps between small test payments of one incident grow by orders of magnitude
    txns = tables[Transaction].select(["event_id", "amount"])
    stolen = fraud.filter(pc.equal(fraud["fraud_type"], "stolen_payment")).join(txns, "event_id")
    tests = stolen.filter(pc.less(stolen["amount"], 5.01)).sort_by([("incident_id", "ascending"),
                                                                    ("event_time", "ascending")]).to_pandas()
    tests["gap"] = tests.groupby("incident_id")["event_time"].diff().dt.total_seconds()
    gaps = tests.dropna(subset=["gap"]).groupby("regime")["gap"].median()
    assert gaps["evasive"] > 20 * gaps["baseline"]


def test_windows_emit_only_their_own_time_range_and_labels_when_due() -> None:
    cfg = SimulationConfig(seed=2, accounts=2_000, days=1, start=START, fraud_rate=0.05,
                           label_delay=LabelDelay(median_hours=0.2, sigma=0.5, min_hours=0.0, never_rate=0.0))
    sim = Simulator(cfg)
    t = to_us(START)
    step = 600 * 1_000_000  # ten-minute windows, like a slow live loop
    labels = 0
    for i in range(18):
        batch = sim.step(t + i * step, t + (i + 1) * step)
        for model, table in batch.tables.items():
            if table.num_rows == 0:
                continue
            column = "label_time" if model is FraudLabel else "event_time"
            times = table[column].cast(pa.int64()).to_numpy()
            assert times.max() < t + (i + 1) * step, model.__name__
            if model is not FraudLabel:
                assert times.min() >= t + i * step
        labels += batch.labels
    assert labels > 0


def test_live_rate_scales_the_population_to_events_per_second() -> None:
    cfg = SimulationConfig(seed=1, accounts=3_000, days=1, start=START)
    sim = Simulator(cfg, live_rate=2_000)
    t = to_us(START)  # live mode: the first window starts at the configured start (the wall clock)
    total = sum(sim.step(t + i * 1_000_000, t + (i + 1) * 1_000_000).events for i in range(10))
    assert total == pytest.approx(20_000, rel=0.05)

"""Operating points and workload metrics, checked against hand-computed values; the gate's rule."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from training.evaluate import precision_at_k_per_day, ranking_metrics, recall_at_fpr, scenario_recall
from training.model import Thresholds
from training.promotion import decide
from training.train import threshold_at_fpr


def test_threshold_at_fpr_flags_at_most_that_share_of_negatives() -> None:
    rng = np.random.default_rng(1)
    scores = rng.random(1000)
    labels = np.zeros(1000, dtype=int)
    for fpr in (0.1, 0.01, 0.001):
        threshold = threshold_at_fpr(scores, labels, fpr)
        flagged = (scores >= threshold).mean()
        assert flagged <= fpr
        assert flagged >= fpr - 1 / 1000  # and not needlessly strict


def test_recall_at_fpr_reads_the_roc_curve() -> None:
    labels = np.array([0] * 100 + [1] * 4)
    scores = np.concatenate([np.linspace(0, 0.5, 100), [0.9, 0.8, 0.45, 0.2]])
    # with 0 false positives only the two top frauds are caught; at 10% FPR (>0.45) three
    assert recall_at_fpr(labels, scores, 0.0) == 0.5
    assert recall_at_fpr(labels, scores, 0.1) == 0.75


def test_precision_at_k_groups_by_account_and_day() -> None:
    day = datetime(2024, 3, 1)
    frame = pd.DataFrame({
        "event_time": [day, day + timedelta(hours=1), day + timedelta(hours=2), day + timedelta(hours=3),
                       day + timedelta(days=1)],
        "account_id": ["a", "a", "b", "c", "a"],
        "label": [0, 1, 0, 0, 0],
    })
    scores = np.array([0.9, 0.1, 0.8, 0.2, 0.5])
    per_day = precision_at_k_per_day(frame, scores, k=2)
    # day 1: accounts a (max 0.9, fraud), b (0.8), c (0.2) -> top 2 = a, b -> 1/2; day 2: only a -> 0/1
    assert per_day.to_dict(orient="records") == [
        {"day": "2024-03-01", "accounts": 3, "fraud_accounts": 1, "reviewed": 2, "precision": 0.5},
        {"day": "2024-03-02", "accounts": 1, "fraud_accounts": 0, "reviewed": 1, "precision": 0.0},
    ]


def test_scenario_recall_uses_the_thresholds() -> None:
    frame = pd.DataFrame({"label": [1, 1, 1, 0], "fraud_type": ["ato", "ato", "p2p_scam", None]})
    out = scenario_recall(frame, np.array([0.9, 0.3, 0.6, 0.99]), Thresholds(0.5, 0.8, 0.01, 0.001))
    assert out == {"ato": {"positives": 2, "recall_at_review": 0.5, "recall_at_block": 0.5},
                   "p2p_scam": {"positives": 1, "recall_at_review": 1.0, "recall_at_block": 0.0}}


def test_ranking_metrics_need_both_classes() -> None:
    from riskpipe.errors import UsageError

    with pytest.raises(UsageError, match="0 positive"):
        ranking_metrics(np.zeros(5), np.linspace(0, 1, 5))


@pytest.mark.parametrize(("challenger", "champion", "promote", "why"), [
    (0.50, None, True, "no champion"),
    (0.05, None, False, "below 3x"),  # base rate 0.02 -> floor 0.06
    (0.56, 0.55, False, "< champion"),  # within the margin
    (0.57, 0.55, True, ">= champion"),
    (0.05, 0.01, False, "below 3x"),  # beating a bad champion is not enough
])
def test_gate_rule(challenger: float, champion: float | None, promote: bool, why: str) -> None:
    metrics = {"auc_pr": challenger, "positive_rate": 0.02}
    decision, reason = decide(metrics, None if champion is None else {"auc_pr": champion}, margin=0.02,
                              min_lift=3.0)
    assert decision is promote
    assert why in reason

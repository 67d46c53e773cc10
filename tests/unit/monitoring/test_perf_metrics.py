"""Performance by day on served scores: AUC-PR, precision@k, and when it is (not) judged."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score

from monitoring.performance import performance


def _frame(n: int = 200, positives_per_day: int = 10, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    start = datetime(2024, 3, 1)
    served = [start + timedelta(days=2 * i // n, minutes=i) for i in range(n)]
    label = np.zeros(n, dtype="int64")
    for day in (0, 1):
        label[rng.choice(np.arange(day * n // 2, (day + 1) * n // 2), positives_per_day, replace=False)] = 1
    return pd.DataFrame({"served_at": served, "account_id": [f"a{i % 50}" for i in range(n)],
                         "score": rng.random(n) * 0.5 + label * 0.4, "label": label})


def test_auc_pr_and_precision_at_k_per_served_day() -> None:
    frame = _frame()
    got = performance(frame, k=5, test_auc_pr=0.8, min_positives=10, max_drop=0.5)
    assert got["judged"] and got["positives"] == 20
    assert got["auc_pr"] == pytest.approx(average_precision_score(frame["label"], frame["score"]))
    assert [d["day"] for d in got["per_day"]] == ["2024-03-01", "2024-03-02"]
    first = frame[frame["served_at"] < datetime(2024, 3, 2)]
    assert got["per_day"][0]["auc_pr"] == pytest.approx(average_precision_score(first["label"], first["score"]))
    assert all(0 <= d["precision"] <= 1 and d["reviewed"] == 5 for d in got["per_day"])


def test_too_few_labels_are_reported_not_judged() -> None:
    got = performance(_frame(positives_per_day=2), k=5, test_auc_pr=0.8, min_positives=10, max_drop=0.5)
    assert not got["judged"] and "4 labelled fraud(s) < 10" in got["reason"]


def test_one_class_only_has_no_auc_pr() -> None:
    frame = _frame().assign(label=0)
    got = performance(frame, k=5, test_auc_pr=0.8, min_positives=1, max_drop=0.5)
    assert got["auc_pr"] is None and not got["judged"]

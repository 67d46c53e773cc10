"""Model performance once labels arrive: AUC-PR and precision@k by day of the production model's served scores.

Served rows join the offline ``labels`` table on ``event_id`` (the id the caller passed to
``/score``; rows without one cannot be joined and are counted as unlabelled). As in training
(``training.config.TrainingConfig``), a served transaction with no fraud label known by now is a
negative: labels arrive late, so the newest hours read optimistic, which is why the alarm needs
``monitoring_min_positives`` labelled frauds before it judges anything. The alarm compares the
window's AUC-PR with the model's own test AUC-PR from its metadata. Precision@k uses the same
per-day rule as the training evaluation (``training.evaluate.precision_at_k_per_day``).
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.offline.base import OfflineStore, naive_utc

log = logging.getLogger(__name__)


def labelled(store: OfflineStore, served: pd.DataFrame, start: datetime, end: datetime) -> pd.DataFrame:
    """Served rows (of ``[start, end)``) with a caller event id, plus ``label`` (1 = a fraud label is known)."""
    from monitoring.served import SERVED_TABLE

    rows = served[~served["event_id"].str.startswith("auto-")]
    if rows.empty or not store.table_exists("labels"):
        return rows.assign(label=pd.Series(0, index=rows.index, dtype="int64"))
    known = set(store.query(
        f"SELECT DISTINCT l.event_id FROM labels l JOIN {SERVED_TABLE} s ON s.event_id = l.event_id "
        "WHERE s.served_at >= ? AND s.served_at < ?", [naive_utc(start), naive_utc(end)]).column(0).to_pylist())
    return rows.assign(label=rows["event_id"].isin(known).astype("int64"))


def performance(frame: pd.DataFrame, *, k: int, test_auc_pr: float | None, min_positives: int,
                max_drop: float, png_path: Path | None = None) -> dict[str, Any]:
    """The performance part of the summary; ``frame`` has event_time/served_at, account_id, score, label."""
    from sklearn.metrics import average_precision_score

    from training.evaluate import precision_at_k_per_day

    positives = int(frame["label"].sum()) if len(frame) else 0
    out: dict[str, Any] = {"rows": len(frame), "positives": positives, "min_positives": min_positives,
                           "test_auc_pr": test_auc_pr, "max_relative_drop": max_drop, "auc_pr": None,
                           "per_day": [], "judged": False}
    if positives == 0 or positives == len(frame):
        out["reason"] = "labels of one class only: AUC-PR undefined"
        return out
    scores = frame["score"].to_numpy(dtype=float)
    out["auc_pr"] = float(average_precision_score(frame["label"], scores))
    days = frame.assign(event_time=frame["served_at"])  # performance by the day the request was served
    per_day = precision_at_k_per_day(days, scores, k)
    aucs = []
    for _, part in days.groupby(pd.to_datetime(days["event_time"]).dt.floor("D")):
        has_both = 0 < part["label"].sum() < len(part)
        aucs.append(float(average_precision_score(part["label"], part["score"])) if has_both else None)
    per_day["auc_pr"] = aucs
    out["per_day"] = per_day.to_dict(orient="records")
    out["precision_at_k"] = float(np.mean(per_day["precision"]))
    out["k"] = k
    out["judged"] = positives >= min_positives and test_auc_pr is not None
    if not out["judged"]:
        out["reason"] = (f"{positives} labelled fraud(s) < {min_positives}" if positives < min_positives
                         else "the model has no test AUC-PR in its metadata")
    if png_path is not None:
        _plot(per_day, test_auc_pr, png_path)
    return out


def _plot(per_day: pd.DataFrame, test_auc_pr: float | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot(per_day["day"], per_day["auc_pr"], marker="o", label="AUC-PR (served)")
    ax.plot(per_day["day"], per_day["precision"], marker="s", label="precision@k")
    if test_auc_pr is not None:
        ax.axhline(test_auc_pr, color="black", linestyle="--", label=f"model test AUC-PR {test_auc_pr:.3f}")
    ax.set_ylim(0, 1)
    ax.set_title("production model performance by day (labels known so far)")
    ax.legend()
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)

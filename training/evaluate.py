"""Evaluation on the test period: ranking quality, operating points, analyst workload, scenarios.

* ``auc_roc`` / ``auc_pr`` (average precision): AUC-PR is the headline, since the base rate is ~1%.
* ``recall_at_1pct_fpr``: fraud caught when 1% of legit traffic may be flagged.
* ``precision_at_k``: per UTC day, analysts review the ``k`` accounts with the highest score that
  day (an account's daily score = its highest transaction score; it is fraud when any of its
  transactions that day is); precision = fraud accounts among those reviewed, averaged over days.
* per-``fraud_type`` recall at the model's review and block thresholds (which scenarios slip by).
* decision counts at the saved thresholds (what serving will do with this traffic).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from riskpipe.errors import UsageError
from training.dataset import LABEL
from training.model import FraudModel, Thresholds


def recall_at_fpr(labels: np.ndarray, scores: np.ndarray, fpr: float) -> float:
    """Highest TPR reachable with FPR <= ``fpr`` on the ROC curve."""
    fprs, tprs, _ = roc_curve(labels, scores)
    ok = fprs <= fpr
    return float(tprs[ok].max()) if ok.any() else 0.0


def precision_at_k_per_day(frame: pd.DataFrame, scores: np.ndarray, k: int) -> pd.DataFrame:
    """One row per day: accounts active, fraud accounts, and precision of the top-k accounts."""
    accounts = pd.DataFrame({
        "day": pd.to_datetime(frame["event_time"]).dt.floor("D").to_numpy(),
        "account_id": frame["account_id"].to_numpy(),
        "score": scores,
        "fraud": frame[LABEL].to_numpy(),
    }).groupby(["day", "account_id"], as_index=False).agg(score=("score", "max"), fraud=("fraud", "max"))
    rows = []
    for day, group in accounts.groupby("day"):
        top = group.nlargest(k, "score")
        rows.append({"day": str(pd.Timestamp(day).date()), "accounts": len(group), "fraud_accounts":
                     int(group["fraud"].sum()), "reviewed": len(top), "precision": float(top["fraud"].mean())})
    return pd.DataFrame(rows)


def scenario_recall(frame: pd.DataFrame, scores: np.ndarray, thresholds: Thresholds) -> dict[str, dict[str, float]]:
    """Per fraud type: positives in the test period and the share reviewed / blocked at the thresholds."""
    out: dict[str, dict[str, float]] = {}
    positive = frame[LABEL].to_numpy() == 1
    types = frame["fraud_type"].to_numpy()
    for fraud_type in sorted({t for t in types[positive] if isinstance(t, str)}):
        mask = positive & (types == fraud_type)
        out[fraud_type] = {
            "positives": int(mask.sum()),
            "recall_at_review": float((scores[mask] >= thresholds.review).mean()),
            "recall_at_block": float((scores[mask] >= thresholds.block).mean()),
        }
    return out


@dataclass
class Evaluation:
    metrics: dict[str, float]
    per_day: pd.DataFrame
    scenarios: dict[str, dict[str, float]]
    decisions: dict[str, int]
    scores: np.ndarray = field(repr=False)
    labels: np.ndarray = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"metrics": self.metrics, "precision_at_k_per_day": self.per_day.to_dict(orient="records"),
                "scenarios": self.scenarios, "decisions": self.decisions}


def ranking_metrics(labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """The metrics the promotion gate compares; both classes must be present."""
    labels = np.asarray(labels)
    positives = int(labels.sum())
    if positives == 0 or positives == len(labels):
        raise UsageError(f"test period has {positives} positive(s) in {len(labels)} rows: cannot evaluate")
    return {
        "auc_roc": float(roc_auc_score(labels, scores)),
        "auc_pr": float(average_precision_score(labels, scores)),
        "recall_at_1pct_fpr": recall_at_fpr(labels, scores, 0.01),
        "positive_rate": positives / len(labels),
        "rows": float(len(labels)),
        "positives": float(positives),
    }


def evaluate_model(model: FraudModel, test: pd.DataFrame, k: int) -> Evaluation:
    """Every evaluation number for ``model`` on the ``test`` frame."""
    if model.thresholds is None:
        raise UsageError("model has no thresholds: train it with training.train.train_model")
    labels = test[LABEL].to_numpy()
    scores = model.predict(test)
    metrics = ranking_metrics(labels, scores)
    per_day = precision_at_k_per_day(test, scores, k)
    metrics["precision_at_k"] = float(per_day["precision"].mean())
    metrics["k_per_day"] = float(k)
    decisions = model.thresholds.decide(scores)
    counts = {d: int((decisions == d).sum()) for d in ("allow", "review", "block")}
    negatives = labels == 0
    metrics["test_fpr_at_review"] = float((scores[negatives] >= model.thresholds.review).mean())
    metrics["recall_at_review"] = float((scores[~negatives] >= model.thresholds.review).mean())
    return Evaluation(metrics=metrics, per_day=per_day, scenarios=scenario_recall(test, scores, model.thresholds),
                      decisions=counts, scores=scores, labels=labels)

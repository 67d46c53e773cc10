"""``monitoring_history``: one row per (run, check, feature, metric), so drift can be plotted over time.

The check's column is ``check_name``: ``CHECK`` is a reserved word in DuckDB and Snowflake SQL, and an
unquoted column of that name would break every query against the table on Snowflake.

Every run appends its drift, prediction-drift, skew and performance figures here (offline store,
append-only, like ``sync_runs``), and ``plot_history`` draws the drift share, the prediction-drift
statistic and the mean served score per run from it: how the distributions moved, not just
whether the last run alarmed.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from features.offline.arrow_utils import TS
from features.offline.base import OfflineStore, naive_utc

HISTORY_TABLE = "monitoring_history"
HISTORY_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("computed_at", TS), ("check_name", pa.string()), ("feature", pa.string()),
    ("metric", pa.string()), ("value", pa.float64()), ("threshold", pa.float64()), ("drifted", pa.bool_()),
])
ALL = "*"  # the feature of a run-level figure


def history_rows(run_id: str, at: datetime, summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The figures of one run's summary as history rows."""
    at = naive_utc(at)
    rows: list[dict[str, Any]] = []

    def add(check: str, feature: str, metric: str, value: Any, threshold: Any = None, drifted: Any = None) -> None:
        if value is not None:
            rows.append({"run_id": run_id, "computed_at": at, "check_name": check, "feature": feature, "metric": metric,
                         "value": float(value), "threshold": None if threshold is None else float(threshold),
                         "drifted": drifted})

    drift = summary.get("drift") or {}
    for feature, d in (drift.get("per_feature") or {}).items():
        add("feature_drift", feature, d["method"], d["value"], d["threshold"], d["drifted"])
    if drift.get("features_tested"):
        add("feature_drift", ALL, "share_drifted", drift["share_drifted"], drift["drift_share_threshold"],
            drift["share_drifted"] >= drift["drift_share_threshold"])
    prediction = drift.get("prediction_drift")
    if prediction:
        add("prediction_drift", "score", prediction["method"], prediction["value"], prediction["threshold"],
            prediction["drifted"])
        add("prediction_drift", "score", "score_mean", drift.get("score_mean"))
    skew = summary.get("skew") or {}
    for feature, s in (skew.get("per_feature") or {}).items():
        add("skew", feature, "mismatch_rate", s["mismatch_rate"], skew["threshold"],
            s["mismatch_rate"] > skew["threshold"])
    perf = summary.get("performance") or {}
    add("performance", ALL, "auc_pr", perf.get("auc_pr"))
    add("performance", ALL, "precision_at_k", perf.get("precision_at_k"))
    return rows


def record_history(store: OfflineStore, rows: list[dict[str, Any]]) -> int:
    store.create_table(HISTORY_TABLE, HISTORY_SCHEMA)
    return store.append(HISTORY_TABLE, pa.Table.from_pylist(rows, schema=HISTORY_SCHEMA))


def read_history(store: OfflineStore, limit_runs: int = 200) -> Any:
    """Run-level figures of the newest ``limit_runs`` runs, oldest first (pandas)."""
    return store.query(
        f"SELECT run_id, computed_at, metric, value FROM {HISTORY_TABLE} "
        "WHERE (check_name = 'feature_drift' AND feature = ?) OR check_name = 'prediction_drift' "
        "QUALIFY dense_rank() OVER (ORDER BY computed_at DESC, run_id) <= ? ORDER BY computed_at",
        [ALL, limit_runs]).to_pandas()


def plot_history(frame: Any, path: Path) -> None:
    """Drift share, prediction-drift statistic and mean served score per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4))
    for metric, part in frame.groupby("metric"):
        ax.plot(part["computed_at"], part["value"], marker="o", label=str(metric))
    ax.set_title("monitoring runs over time")
    ax.set_xlabel("run time (UTC)")
    ax.legend(fontsize="small")
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)

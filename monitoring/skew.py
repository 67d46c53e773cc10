"""Training-serving skew: recompute logged requests' features point-in-time offline and compare.

For a sample of served requests, each online feature the model used is recomputed from the
offline store as training looks it up (``features.pit.get_training_frame`` at
``before_own_event(event_time)``: the entity's newest row strictly before the request's own
transaction, TTL honoured), then compared with the value the service logged. Per feature: the mismatch rate
(both values present and different beyond float noise) and the mean absolute difference.

What is NOT counted as skew, on purpose (each is counted and reported separately):

* **degraded requests** (the online store did not answer): the service scored with missing values
  by design; they are excluded from the sample.
* **missing offline** (served a value, offline has none as of the request): the offline history
  lags the online store (ingestion writes both independently, sync repairs later), so this measures
  offline freshness, not a computation difference.
* **missing online** (no served value, offline has one): an entity the online store did not hold
  (expired key, not ingested yet): a freshness problem the sync DAG reports.

Only features of catalog groups whose entity key the log record carries can be recomputed (the
prediction log carries ``account_id``; other keys when serving logs them); request fields and
on-demand features are derived from the request and listed as not checked.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.definitions.catalog import FEATURE_GROUPS
from features.offline.base import OfflineStore
from features.pit import before_own_event, get_training_frame
from features.types import FeatureGroupLike, feature_dtypes, group_table

log = logging.getLogger(__name__)

REL_TOL, ABS_TOL = 1e-6, 1e-9


def features_by_group(columns: list[str]) -> tuple[dict[str, tuple[FeatureGroupLike, list[str]]], list[str]]:
    """Model columns grouped by the catalog group that computes them, and the columns no group computes."""
    owner = {name: g for g in FEATURE_GROUPS for name in feature_dtypes(g)}
    groups: dict[str, tuple[FeatureGroupLike, list[str]]] = {}
    other = []
    for column in columns:
        group = owner.get(column)
        if group is None:
            other.append(column)
            continue
        groups.setdefault(group.name, (group, []))[1].append(column)
    return groups, other


def compare_values(served: np.ndarray, offline: np.ndarray) -> dict[str, Any]:
    """Counts and rates of one feature over aligned served/offline values (NaN = missing)."""
    served, offline = np.asarray(served, dtype=float), np.asarray(offline, dtype=float)
    has_s, has_o = ~np.isnan(served), ~np.isnan(offline)
    both = has_s & has_o
    diff = np.abs(served[both] - offline[both])
    mismatch = diff > np.maximum(ABS_TOL, REL_TOL * np.abs(offline[both]))
    compared = int(both.sum())
    return {"compared": compared, "mismatches": int(mismatch.sum()),
            "mismatch_rate": float(mismatch.mean()) if compared else 0.0,
            "mean_abs_diff": float(diff.mean()) if compared else 0.0,
            "missing_offline": int((has_s & ~has_o).sum()), "missing_online": int((~has_s & has_o).sum()),
            "both_missing": int((~has_s & ~has_o).sum())}


def _recompute(store: OfflineStore, group: FeatureGroupLike, columns: list[str], points: pd.DataFrame) -> pd.DataFrame:
    key = group.entity.join_key
    labels = pd.DataFrame({key: points[key], "as_of": before_own_event(points["event_time"])})
    frame = get_training_frame(store, labels, [f"{group.name}:{c}" for c in columns], [group], time_col="as_of")
    return frame[columns].astype(float)


def skew_check(store: OfflineStore, served: pd.DataFrame, model_columns: list[str], *, sample: int,
               max_mismatch_rate: float, seed: int = 0, png_path: Path | None = None) -> dict[str, Any]:
    """The skew part of the monitoring summary (see the module docstring for what is counted how)."""
    degraded = served["degraded"].astype(bool) if len(served) else pd.Series(dtype=bool)
    healthy = served[~degraded]
    if len(healthy) > sample:
        healthy = healthy.sample(n=sample, random_state=seed)
    healthy = healthy.reset_index(drop=True)
    groups, other = features_by_group(model_columns)
    not_checked: dict[str, str] = {c: "request field or on-demand feature (derived from the request)" for c in other}
    per_feature: dict[str, dict[str, Any]] = {}
    if len(healthy):
        values = pd.DataFrame([json.loads(v) for v in healthy["features"]]).astype(float)
        entities = pd.DataFrame([json.loads(v) for v in healthy["entities"]])
        # a record without the request's event time (older serving builds) is looked up at its served_at
        request_time = healthy["event_time"].fillna(healthy["served_at"]).rename("event_time")
        points = pd.concat([entities, request_time], axis=1)
        for name, (group, columns) in groups.items():
            key = group.entity.join_key
            reason = None
            if not store.table_exists(group_table(group)):
                reason = f"offline table {group_table(group)} does not exist (group never materialized)"
            elif key not in points.columns or points[key].isna().all():
                reason = f"prediction log carries no {key!r}"
            if reason:
                not_checked.update(dict.fromkeys(columns, reason))
                continue
            rows = points[points[key].notna()]
            offline = _recompute(store, group, columns, rows)
            for column in columns:
                got = values.loc[rows.index, column] if column in values else np.full(len(rows), math.nan)
                per_feature[column] = {"group": name, **compare_values(np.asarray(got), offline[column].to_numpy())}
    skewed = sorted(c for c, r in per_feature.items() if r["compared"] and r["mismatch_rate"] > max_mismatch_rate)
    if png_path is not None and per_feature:
        _plot(per_feature, max_mismatch_rate, png_path)
    return {"sampled": len(healthy), "degraded_excluded": int(degraded.sum()), "threshold": max_mismatch_rate,
            "per_feature": per_feature, "skewed_features": skewed,
            "max_mismatch_rate": max((r["mismatch_rate"] for r in per_feature.values()), default=0.0),
            "not_checked": not_checked}


def _plot(per_feature: dict[str, dict[str, Any]], threshold: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted(per_feature)
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(names) + 1.5))
    ax.barh(names, [per_feature[n]["mismatch_rate"] for n in names], color="tab:red")
    ax.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:g}")
    ax.set_xlabel("served vs offline (PIT) mismatch rate")
    ax.set_title("training-serving skew per feature")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)

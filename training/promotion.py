"""Champion / challenger: the production pointer (one model at a time, with history) and the gate.

The pointer is a small JSON file, ``<bentoml_home>/production.json``:
``{"stack": [tags, oldest first; the last is production], "history": [every action]}``.
A file next to the model store (not a DuckDB table) because serving and the CLI must read it
while a training task holds the offline store's single writer lock; writes go through a
temp file + ``os.replace`` under an exclusive ``flock``, so readers never see half a file and
two promoters cannot interleave. ``rollback`` pops the stack: the previous production model
comes back, and the history keeps both actions.

The gate re-scores the champion on the challenger's test period (same rows, same labels)
and promotes only when the challenger's AUC-PR beats it by ``promotion_margin``; with no
champion the challenger must still show real lift over the base rate (``min_lift``).
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from riskpipe.errors import UsageError
from riskpipe.settings import Settings
from training import model_store
from training.evaluate import ranking_metrics
from training.model import FraudModel

POINTER_FILE = "production.json"


def pointer_path(settings: Settings) -> Path:
    return Path(str(settings.bentoml_home)) / POINTER_FILE


def _empty() -> dict[str, Any]:
    return {"stack": [], "history": []}


def read_pointer(settings: Settings) -> dict[str, Any]:
    path = pointer_path(settings)
    if not path.exists():
        return _empty()
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise UsageError(f"production pointer {path} is corrupt: {exc}") from exc
    return {"stack": list(data.get("stack", [])), "history": list(data.get("history", []))}


@contextmanager
def _locked_pointer(settings: Settings) -> Iterator[dict[str, Any]]:
    """Read-modify-write of the pointer under an exclusive lock; the yielded dict is written back."""
    path = pointer_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = read_pointer(settings)
        yield data
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
        os.replace(tmp, path)


def production_tag(settings: Settings) -> str | None:
    """The tag serving must load, or None before the first promotion."""
    stack = read_pointer(settings)["stack"]
    return stack[-1] if stack else None


def production_age(settings: Settings, now: datetime | None = None) -> timedelta | None:
    """Time since the pointer last moved (promotion or rollback); None before the first promotion."""
    history = read_pointer(settings)["history"]
    if not history:
        return None
    return (now or datetime.now(UTC)) - datetime.fromisoformat(history[-1]["at"])


def scheduled_run_due(run_type: str, age: timedelta | None, min_age: timedelta) -> bool:
    """Whether a retraining run should train. Only a *scheduled* run is skipped, and only while the
    production model is younger than ``min_age``: `riskpipe up` has just trained one, and Airflow
    starts the latest weekly interval as soon as the DAG is unpaused. Runs a person or monitoring
    triggered always train."""
    return "scheduled" not in run_type.lower() or age is None or age >= min_age


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def set_production(settings: Settings, tag: str, reason: str, action: str = "promote") -> dict[str, Any]:
    """Make ``tag`` the production model (it must exist in the store); returns the history entry."""
    if not model_store.exists(settings, tag):
        raise UsageError(f"model {tag!r} is not in the model store; see `riskpipe models list`")
    with _locked_pointer(settings) as data:
        previous = data["stack"][-1] if data["stack"] else None
        if previous == tag:
            raise UsageError(f"model {tag!r} is already in production")
        data["stack"].append(tag)
        entry = {"action": action, "tag": tag, "previous": previous, "at": _now(), "reason": reason}
        data["history"].append(entry)
    return entry


def rollback(settings: Settings, reason: str = "manual rollback") -> dict[str, Any]:
    """Restore the model that was production before the current one."""
    with _locked_pointer(settings) as data:
        if len(data["stack"]) < 2:
            raise UsageError("nothing to roll back to: fewer than two promotions in the history")
        removed = data["stack"].pop()
        entry = {"action": "rollback", "tag": data["stack"][-1], "previous": removed, "at": _now(), "reason": reason}
        data["history"].append(entry)
    return entry


@dataclass
class GateDecision:
    promote: bool
    reason: str
    challenger: dict[str, float]
    champion: dict[str, float] | None
    champion_tag: str | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def decide(challenger: dict[str, float], champion: dict[str, float] | None, margin: float,
           min_lift: float) -> tuple[bool, str]:
    """Pure rule: beat the champion (when there is one) by ``margin`` AND show ``min_lift`` x the base rate.

    Both conditions are evaluated and reported, so a refusal says everything that was wrong.
    """
    reasons: list[str] = []
    promote = True
    if champion is None:
        reasons.append("no champion")
    elif challenger["auc_pr"] >= champion["auc_pr"] + margin - 1e-12:  # exactly the margin counts (float noise)
        reasons.append(f"challenger AUC-PR {challenger['auc_pr']:.4f} >= champion {champion['auc_pr']:.4f} "
                       f"+ margin {margin:g}")
    else:
        promote = False
        reasons.append(f"challenger AUC-PR {challenger['auc_pr']:.4f} < champion {champion['auc_pr']:.4f} "
                       f"+ margin {margin:g}")
    floor = min_lift * challenger["positive_rate"]
    if challenger["auc_pr"] >= floor:
        reasons.append(f"AUC-PR {challenger['auc_pr']:.4f} >= {floor:.4f} ({min_lift:g}x base rate)")
    else:
        promote = False
        reasons.append(f"challenger AUC-PR {challenger['auc_pr']:.4f} is below {min_lift:g}x the test "
                       f"positive rate ({floor:.4f})")
    return promote, "; ".join(reasons)


def gate(settings: Settings, challenger: FraudModel, test: pd.DataFrame, margin: float,
         min_lift: float) -> GateDecision:
    """Compare the challenger with the current champion on the same test rows."""
    from training.dataset import LABEL

    labels = test[LABEL].to_numpy()
    challenger_metrics = ranking_metrics(labels, challenger.predict(test))
    champion_tag = production_tag(settings)
    champion_metrics = None
    if champion_tag is not None:
        champion = model_store.load(settings, champion_tag)
        missing = [c for c in champion.feature_columns if c not in test.columns]
        if missing:
            return GateDecision(False, f"champion {champion_tag} needs features missing from the test set "
                                       f"{missing[:5]}: cannot compare; use --force-promote after review",
                                challenger_metrics, None, champion_tag)
        champion_metrics = ranking_metrics(labels, champion.predict(test))
    promote, reason = decide(challenger_metrics, champion_metrics, margin, min_lift)
    return GateDecision(promote, reason, challenger_metrics, champion_metrics, champion_tag)

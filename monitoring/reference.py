"""The drift reference: what the production model was trained on, sampled to a bounded size.

The model's BentoML metadata names its training run (``run_id``, written by
``training.pipeline.register``); that run directory holds the exact frame it was fit on. The
reference is that frame's model features plus the model's own scores on it (the reference for
prediction drift), sampled with a fixed seed so two runs against the same model compare the same
rows. A model without a run (e.g. imported by hand) has no reference: the drift check says so
instead of inventing one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from riskpipe.errors import UsageError
from riskpipe.settings import Settings


class NothingToMonitor(UsageError):
    """No production model yet: there is nothing to compare served traffic with."""


@dataclass
class Reference:
    tag: str
    run_id: str | None
    feature_columns: list[str]
    frame: pd.DataFrame | None  # model features + "score"; None when the run cannot be found
    metadata: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None

    @property
    def test_auc_pr(self) -> float | None:
        value = (self.metadata.get("metrics") or {}).get("auc_pr")
        return float(value) if value is not None else None


def production_model(settings: Settings) -> tuple[str, Any]:
    """(tag, FraudModel) of the production model; a UsageError when nothing is promoted."""
    from training import model_store
    from training.promotion import production_tag

    tag = production_tag(settings)
    if tag is None:
        raise NothingToMonitor("no production model to monitor; run `riskpipe train` first")
    return tag, model_store.load(settings, tag)


def load_reference(settings: Settings, tag: str, model: Any, rows: int | None = None, seed: int = 0) -> Reference:
    """The production model's training frame (sampled to ``rows``) with the model's scores on it."""
    from training.pipeline import load_training_set, runs_dir

    rows = rows or settings.monitoring_reference_rows
    meta = dict(model.info)
    columns = list(model.feature_columns)
    run_id = meta.get("run_id")
    if not run_id:
        return Reference(tag, None, columns, None, meta, f"model {tag} has no run_id in its metadata")
    run_dir = Path(runs_dir(settings), str(run_id))
    if not (run_dir / "frame.parquet").exists():
        return Reference(tag, str(run_id), columns, None, meta, f"training run {run_dir} is gone")
    frame = load_training_set(run_dir).frame
    if len(frame) > rows:
        frame = frame.sample(n=rows, random_state=seed).sort_index()
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        return Reference(tag, str(run_id), columns, None, meta, f"training frame lacks model features {missing[:5]}")
    out = frame[columns].astype(float).reset_index(drop=True)
    out["score"] = model.predict(frame)
    return Reference(tag, str(run_id), columns, out, meta)

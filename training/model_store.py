"""The BentoML model store under ``settings.bentoml_home``: save, load and list fraud models.

Each model is saved with ``bentoml.xgboost.save_model`` (so ``bentoml serve`` can load it)
and carries what an auditor asks for: feature list and feature-group versions, training
window, data fingerprint, metrics, thresholds, code version, plus the calibrator (custom
object). BentoML reads its home once per process, so ``model_store(settings)`` points the
container at the settings' home explicitly; tests with different homes in one process work.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from riskpipe.errors import UsageError
from riskpipe.settings import REPO_ROOT, Settings
from training.model import FraudModel, Thresholds, prepare_for_scoring

MODEL_NAME = "fraud_xgb"


@contextmanager
def model_store(settings: Settings) -> Iterator[Any]:
    """Yield the ``ModelStore`` of ``settings.bentoml_home`` with BentoML's globals pointed at it."""
    home = Path(str(settings.bentoml_home))
    (home / "models").mkdir(parents=True, exist_ok=True)
    from bentoml._internal.configuration.containers import BentoMLContainer
    from bentoml._internal.models import ModelStore

    store = ModelStore(str(home / "models"))
    previous = (BentoMLContainer.bentoml_home._override, BentoMLContainer.model_store._override,
                os.environ.get("BENTOML_HOME"))
    os.environ["BENTOML_HOME"] = str(home)  # what bentoml code reading the env (or a child process) sees
    BentoMLContainer.bentoml_home.set(str(home))
    BentoMLContainer.model_store.set(store)
    try:
        yield store
    finally:
        BentoMLContainer.bentoml_home._override, BentoMLContainer.model_store._override = previous[:2]
        if previous[2] is None:
            os.environ.pop("BENTOML_HOME", None)
        else:
            os.environ["BENTOML_HOME"] = previous[2]


def code_version() -> str:
    """Git commit of the code that trained the model (``+dirty`` with local changes), or ``unknown``."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                             timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=5, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{sha}+dirty" if dirty else sha


@dataclass
class StoredModel:
    tag: str
    creation_time: str
    metadata: dict[str, Any]


def save(settings: Settings, model: FraudModel, metadata: dict[str, Any]) -> str:
    """Save ``model`` with ``metadata``; returns the tag (``fraud_xgb:<version>``)."""
    import bentoml

    if model.thresholds is None:
        raise UsageError("refusing to register a model without decision thresholds")
    meta = {**metadata, "feature_columns": model.feature_columns, "thresholds": model.thresholds.to_dict(),
            "train_info": {k: v for k, v in model.info.items() if k != "params"}, "params": model.info.get("params"),
            "code_version": metadata.get("code_version") or code_version()}
    with model_store(settings):
        saved = bentoml.xgboost.save_model(
            MODEL_NAME, model.booster,
            signatures={"predict": {"batchable": True}},
            labels={"owner": "riskpipe-training", "stage": "candidate"},
            metadata=_jsonable(meta),
            custom_objects={"calibrator": model.calibrator} if model.calibrator is not None else None,
        )
    return str(saved.tag)


def load(settings: Settings, tag: str) -> FraudModel:
    """The model of ``tag`` ready to score (feature order, thresholds and calibration restored)."""
    import bentoml
    from bentoml.exceptions import NotFound

    with model_store(settings) as store:
        try:
            stored = store.get(tag)
        except NotFound as exc:
            raise UsageError(f"model {tag!r} is not in the model store ({settings.bentoml_home})") from exc
        booster = prepare_for_scoring(bentoml.xgboost.load_model(stored))
        meta = dict(stored.info.metadata)
        calibrator = stored.custom_objects.get("calibrator") if stored.custom_objects else None
    return FraudModel(booster=booster, feature_columns=list(meta["feature_columns"]),
                      thresholds=Thresholds(**meta["thresholds"]), calibrator=calibrator, info=meta)


def list_models(settings: Settings) -> list[StoredModel]:
    """Every fraud model in the store, newest first."""
    with model_store(settings) as store:
        models = [m for m in store.list() if m.tag.name == MODEL_NAME]
        out = [StoredModel(str(m.tag), m.info.creation_time.isoformat(), dict(m.info.metadata)) for m in models]
    return sorted(out, key=lambda m: m.creation_time, reverse=True)


def exists(settings: Settings, tag: str) -> bool:
    from bentoml.exceptions import NotFound

    with model_store(settings) as store:
        try:
            store.get(tag)
        except NotFound:
            return False
    return True


def _jsonable(value: Any) -> Any:
    """BentoML metadata takes plain values only (no None): numpy scalars -> numbers, None keys dropped."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value if v is not None]
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        return value.item()
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)

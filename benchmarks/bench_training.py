"""Training pipeline benchmark: time per stage on a simulated history, and model scoring latency.

    .venv/bin/python -m benchmarks.bench_training [--accounts 1000] [--days 10] [--rounds 300] [--scale-rows 1000000]
    .venv/bin/python -m benchmarks.bench_training --from-run RUN_DIR [--scale-rows 1000000]

Simulates ``accounts`` x ``days`` into a throwaway DuckDB, then times each stage of
``training.pipeline`` as the DAG runs them (build = PIT/as-of feature joins for every catalog
group; validate = the Great Expectations suite, import included; train; evaluate + report;
register to BentoML; gate). Also measures single-row scoring (``FraudModel.predict`` on one
row, what serving does) as p50/p99 and batch scoring throughput. Quality numbers (AUC-PR vs the
base rate) are recorded so a faster change that hurts the model is visible.
Then the scale-up: the simulated training set resampled (with replacement, per split) to
``--scale-rows`` rows and trained with the same ``train_model`` on the CPU, and on CUDA too when
a GPU is usable, for training time, scoring latency per device and GPU speedup at a size the
simulation alone cannot reach fast.
``--from-run`` skips the stages and runs only the scale-up on a training run's saved set
(``frame.parquet`` + ``config.json``): how the GPU path is measured on a lent GPU machine that
has no stores. Results: ``benchmarks/results/training.json`` (``training_scale.json`` with ``--from-run``).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.machine import DEFAULT_PACKAGES, machine_info
from riskpipe.settings import Settings
from training import pipeline
from training.config import TrainingConfig
from training.dataset import SPLIT, TrainingSet
from training.device import cuda_available
from training.model import FraudModel, to_matrix
from training.testing import START, simulate_history
from training.train import train_model

HERE = Path(__file__).resolve().parent


def _timed(name: str, timings: dict[str, float], fn: Any, *args: Any) -> Any:
    started = time.perf_counter()
    result = fn(*args)
    timings[name] = round(time.perf_counter() - started, 3)
    print(f"  {name:<10} {timings[name]:8.2f} s", flush=True)
    return result


def run(accounts: int, days: float, rounds: int, scale_rows: int = 0) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="rp-bench-training-") as tmp:
        settings = Settings(data_dir=Path(tmp) / "riskpipe", training_device="auto")
        timings: dict[str, float] = {}
        history = _timed("simulate", timings, lambda: simulate_history(settings, accounts=accounts, days=days))
        end = START.replace(tzinfo=None) + timedelta(days=days)
        config = TrainingConfig.from_settings(settings, start=START.replace(tzinfo=None), end=end,
                                              gap=timedelta(hours=12), num_boost_round=rounds)
        run_dir = _timed("build", timings, pipeline.build, settings, config)
        _timed("validate", timings, pipeline.validate, run_dir)
        _timed("train", timings, pipeline.train, run_dir)
        metrics = _timed("evaluate", timings, pipeline.evaluate, run_dir)
        tag = _timed("register", timings, pipeline.register, settings, run_dir)
        _timed("gate", timings, pipeline.gate, settings, run_dir, tag)

        model = pipeline.load_run_model(run_dir)
        training_set = pipeline.load_training_set(run_dir)
        test = training_set.part("test")
        frame_rows = len(training_set.frame)
        scale = scale_up(training_set, config, scale_rows) if scale_rows else None
        return {
            "benchmark": "training",
            "params": {"accounts": accounts, "days": days, "num_boost_round": rounds},
            "data": {"events": history.events, "labels": history.labels, "training_rows": frame_rows,
                     "features": len(model.feature_columns), "test_rows": len(test)},
            "device": model.info.get("device"),
            "stage_seconds": timings,
            "quality": {"auc_pr": metrics["auc_pr"], "positive_rate": metrics["positive_rate"],
                        "auc_pr_lift": metrics["auc_pr"] / metrics["positive_rate"], "auc_roc": metrics["auc_roc"],
                        "recall_at_1pct_fpr": metrics["recall_at_1pct_fpr"],
                        "best_iteration": model.info.get("best_iteration")},
            "scoring": scoring_latency(model, to_matrix(test, model.feature_columns)),
            "scale_up": scale,
            "machine": machine_info((*DEFAULT_PACKAGES, "great-expectations", "scikit-learn")),
        }


def scoring_latency(model: FraudModel, matrix: np.ndarray, rows: int = 500) -> dict[str, float]:
    """Single-row ``predict_matrix`` (serving's per-request call) p50/p99 and whole-matrix rows/s."""
    latencies = []
    for i in range(rows):
        started = time.perf_counter()
        model.predict_matrix(matrix[i % len(matrix): i % len(matrix) + 1])
        latencies.append((time.perf_counter() - started) * 1000)
    started = time.perf_counter()
    model.predict_matrix(matrix)
    return {"single_row_ms_p50": round(float(np.percentile(latencies, 50)), 3),
            "single_row_ms_p99": round(float(np.percentile(latencies, 99)), 3),
            "batch_rows": len(matrix), "batch_rows_per_s": round(len(matrix) / (time.perf_counter() - started))}


def run_from(run_dir: str, scale_rows: int) -> dict[str, Any]:
    """Only the scale-up, on a saved training run (a GPU machine without the stores)."""
    return {"benchmark": "training_scale", "run_dir": run_dir,
            "scale_up": scale_up(pipeline.load_training_set(run_dir), pipeline.load_config(run_dir), scale_rows),
            "machine": machine_info(("xgboost", "numpy", "pandas", "scikit-learn"))}


def scale_up(training_set: TrainingSet, config: TrainingConfig, rows: int) -> dict[str, Any]:
    """Train time at ``rows`` rows: each split resampled in proportion, so early stopping still sees
    a validation period; CPU always, CUDA when a GPU is usable (speedup = cpu / cuda seconds)."""
    frame = training_set.frame
    rng = np.random.default_rng(0)
    parts = []
    for split, part in frame.groupby(SPLIT):
        n = max(1, round(rows * len(part) / len(frame)))
        parts.append(part.iloc[rng.integers(0, len(part), n)].assign(**{SPLIT: split}))
    big = TrainingSet(frame=pd.concat(parts, ignore_index=True), feature_columns=training_set.feature_columns)
    out: dict[str, Any] = {"rows": len(big.frame), "features": len(big.feature_columns)}
    matrix = to_matrix(big.part("test"), big.feature_columns)
    for device in ("cpu", "cuda") if cuda_available() else ("cpu",):
        print(f"  scale-up: training on {len(big.frame):,} rows, device={device}", flush=True)
        started = time.perf_counter()
        model = train_model(big, config.model_copy(update={"device": device}))
        out[f"{device}_seconds"] = round(time.perf_counter() - started, 2)
        out[f"{device}_best_iteration"] = model.info.get("best_iteration")
        model.booster.set_param({"device": device})  # score where serving_device would put it
        out[f"{device}_scoring"] = scoring_latency(model, matrix)
    out["gpu_available"] = "cuda_seconds" in out
    if out["gpu_available"]:
        out["gpu_speedup"] = round(out["cpu_seconds"] / out["cuda_seconds"], 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--days", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--scale-rows", type=int, default=1_000_000, help="0 skips the scale-up training run.")
    parser.add_argument("--from-run", metavar="RUN_DIR", help="Only the scale-up, on this training run's saved set.")
    parser.add_argument("--out", type=Path, help="Result file (default: benchmarks/results/training[_scale].json).")
    args = parser.parse_args()
    if args.from_run:
        result = run_from(args.from_run, args.scale_rows or 1_000_000)
    else:
        result = run(args.accounts, args.days, args.rounds, args.scale_rows)
    out = args.out or HERE / "results" / ("training_scale.json" if args.from_run else "training.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str))
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2, default=str))


if __name__ == "__main__":
    main()

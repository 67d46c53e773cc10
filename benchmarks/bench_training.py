"""Training pipeline benchmark: time per stage on a simulated history, and model scoring latency.

    .venv/bin/python -m benchmarks.bench_training [--accounts 1000] [--days 10] [--rounds 300]

Simulates ``accounts`` x ``days`` into a throwaway DuckDB, then times each stage of
``training.pipeline`` as the DAG runs them (build = PIT/as-of feature joins for every catalog
group; validate = the Great Expectations suite, import included; train; evaluate + report;
register to BentoML; gate). Also measures single-row scoring (``FraudModel.predict`` on one
row, what serving does) as p50/p99 and batch scoring throughput. Quality numbers (AUC-PR vs the
base rate) are recorded so a faster change that hurts the model is visible.
Results: ``benchmarks/results/training.json``.
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

from benchmarks.machine import DEFAULT_PACKAGES, machine_info
from riskpipe.settings import Settings
from training import pipeline
from training.config import TrainingConfig
from training.testing import START, simulate_history

HERE = Path(__file__).resolve().parent


def _timed(name: str, timings: dict[str, float], fn: Any, *args: Any) -> Any:
    started = time.perf_counter()
    result = fn(*args)
    timings[name] = round(time.perf_counter() - started, 3)
    print(f"  {name:<10} {timings[name]:8.2f} s", flush=True)
    return result


def run(accounts: int, days: float, rounds: int) -> dict[str, Any]:
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
        test = pipeline.load_training_set(run_dir).part("test")
        rows = [test.iloc[[i % len(test)]] for i in range(500)]
        latencies = []
        for row in rows:
            started = time.perf_counter()
            model.predict(row)
            latencies.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        model.predict(test)
        batch_seconds = time.perf_counter() - started
        frame_rows = len(pipeline.load_training_set(run_dir).frame)
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
            "scoring": {"single_row_ms_p50": float(np.percentile(latencies, 50)),
                        "single_row_ms_p99": float(np.percentile(latencies, 99)),
                        "batch_rows_per_s": len(test) / batch_seconds},
            "machine": machine_info((*DEFAULT_PACKAGES, "great-expectations", "scikit-learn")),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--days", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args()
    result = run(args.accounts, args.days, args.rounds)
    out = HERE / "results" / "training.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str))
    print(json.dumps({k: result[k] for k in ("stage_seconds", "quality", "scoring")}, indent=2))


if __name__ == "__main__":
    main()

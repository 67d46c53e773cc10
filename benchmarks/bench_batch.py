"""Batch engine benchmark: backfill (compute_range) and arbitrary-point (compute_at_points) speed on DuckDB.

    .venv/bin/python -m benchmarks.bench_batch [--events 200000] [--accounts 5000] [--repeats 3]

Loads seeded synthetic transactions (7 days) into a DuckDB file, then times, per windowed
group on the transactions source: the backfill of one day (one output row per event of that
day) and the features at 10k random (account, time) points. Reports the median and max over
repeats and output rows per second. Results: ``benchmarks/results/batch.json``.

The SQL joins each point to its key's events inside the longest window, so cost grows with
points x events-per-key-per-window: realistic key cardinalities (``keys`` = accounts) are used;
a single very hot key (one card used by everyone) is the known slow case.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks.machine import machine_info
from features.batch import compute_at_points, compute_range
from features.batch.synthetic import synthetic_transactions
from features.definitions import FEATURE_GROUPS, WindowedFeatureGroup
from features.offline import DuckDBOfflineStore

HERE = Path(__file__).resolve().parent
START = datetime(2024, 1, 1)
TABLE = "events_transactions"


def _timed(fn: Any, repeats: int) -> tuple[list[float], Any]:
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return times, result


def run(events: int, accounts: int, repeats: int) -> dict[str, Any]:
    frame = synthetic_transactions(events, seed=11, start=START, span=timedelta(days=7), accounts=accounts,
                                   keys=accounts)
    rng = random.Random(5)
    # points at random times of the last day, on keys drawn from the events (so most have history)
    sample = frame.sample(10_000, replace=True, random_state=5)
    as_of = [START + timedelta(days=6, seconds=rng.randrange(86_400)) for _ in range(10_000)]
    groups = [g for g in FEATURE_GROUPS if isinstance(g, WindowedFeatureGroup) and g.source.table == TABLE]
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = DuckDBOfflineStore(Path(tmp) / "bench.duckdb")
        store.append(TABLE, frame)
        day = (START + timedelta(days=6), START + timedelta(days=7))
        for group in groups:
            backfill, rows = _timed(lambda g=group: compute_range(store, g, *day), repeats)
            key = group.entity.join_key
            points = pd.DataFrame({key: sample[key].to_numpy(), "as_of": as_of}).dropna()
            at_points, prows = _timed(lambda g=group, p=points: compute_at_points(store, g, p), repeats)
            results[group.name] = {
                "features": len(group.features),
                "max_window_s": int(group.max_window.total_seconds()),
                "backfill_1d": {"rows": rows.num_rows, "p50_s": statistics.median(backfill), "max_s": max(backfill),
                                "rows_per_s": rows.num_rows / statistics.median(backfill)},
                "points_10k": {"rows": prows.num_rows, "p50_s": statistics.median(at_points), "max_s": max(at_points),
                               "rows_per_s": prows.num_rows / statistics.median(at_points)},
            }
            print(f"{group.name:<26} backfill 1d {rows.num_rows:>7} rows p50 {statistics.median(backfill):6.3f}s | "
                  f"10k points p50 {statistics.median(at_points):6.3f}s", flush=True)
        store.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--accounts", type=int, default=5_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    results = run(args.events, args.accounts, args.repeats)
    out = {
        "benchmark": "batch",
        "params": {"events": args.events, "accounts": args.accounts, "span_days": 7, "repeats": args.repeats,
                   "points": 10_000, "backend": "duckdb file"},
        "machine": machine_info(),
        "groups": results,
    }
    (HERE / "results").mkdir(exist_ok=True)
    path = HERE / "results" / "batch.json"
    path.write_text(json.dumps(out, indent=2, default=str))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

"""PIT retrieval benchmark: riskpipe vs a hand-written DuckDB ASOF query vs Feast (duckdb store).

    .venv/bin/python -m benchmarks.bench_pit [--scale 1.0] [--repeats 3]

One generated data set (default 1M feature rows in 3 groups over 50k entities, 200k labels of
which ~9% name entities without features) is written to Parquet and loaded into a DuckDB file;
all three contenders answer the same question (newest row at or before each label, TTL masked,
one row per label). The hand-written query is the floor (same semantics, no planning or
validation); Feast runs in its own venv (``benchmarks/.venv-feast``, created on first run) as a
subprocess that times itself. Every contender's rows lost and value mismatches against riskpipe
are counted. Results: ``benchmarks/results/pit.json``. Goals: riskpipe <= 1.25x raw, >= 5x
faster than Feast, 0 rows lost.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.machine import DEFAULT_PACKAGES, machine_info
from features.offline import DuckDBOfflineStore
from features.pit import get_training_frame
from features.testing import stub_group

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "pit.json"
FEAST_VENV = HERE / ".venv-feast"
FEAST_REQUIREMENTS = ("feast[duckdb]", "pandas<3")
START = datetime(2024, 1, 1)
SPAN_S = 30 * 24 * 3600

GROUPS = [
    stub_group("txn_1d", "account_id", timedelta(days=1), amount_sum="float64", txn_count="int64"),
    stub_group("login_7d", "account_id", timedelta(days=7), failed_logins="int64", distinct_ips="int64"),
    stub_group("profile", "account_id", timedelta(0), account_age_days="float64", has_2fa="bool"),
]
REFS = [f"{g.name}:{f.name}" for g in GROUPS for f in g.features]


def generate(n_features: int, n_entities: int, n_labels: int, seed: int = 7) -> tuple[dict[str, pa.Table], pa.Table]:
    """Feature history per group (unique on key + time) and labels with a ``label_id`` for matching."""
    rng = np.random.default_rng(seed)
    ids = np.array([f"acct_{i:06d}" for i in range(int(n_entities * 1.1))])  # the last ~9% never get features
    tables: dict[str, pa.Table] = {}
    for i, group in enumerate(GROUPS):
        n = n_features // len(GROUPS) + (1 if i < n_features % len(GROUPS) else 0)
        frame = pd.DataFrame(
            {
                "account_id": ids[rng.integers(0, n_entities, n)],
                "event_time": START + pd.to_timedelta(rng.integers(0, SPAN_S, n), unit="s"),
            }
        )
        frame["created_at"] = frame["event_time"] + pd.to_timedelta(rng.integers(1, 600, n), unit="s")
        for feature in group.features:
            if feature.dtype == "float64":
                frame[feature.name] = rng.gamma(2.0, 50.0, n).round(2)
            elif feature.dtype == "int64":
                frame[feature.name] = rng.integers(0, 40, n)
            else:
                frame[feature.name] = rng.random(n) < 0.6
        frame = frame.drop_duplicates(["account_id", "event_time"]).reset_index(drop=True)
        tables[group.name] = _us(pa.Table.from_pandas(frame, preserve_index=False))
    labels = pd.DataFrame(
        {
            "label_id": np.arange(n_labels),
            "account_id": ids[rng.integers(0, len(ids), n_labels)],
            "event_time": START + pd.to_timedelta(rng.integers(0, SPAN_S + 3 * 24 * 3600, n_labels), unit="s"),
            "is_fraud": (rng.random(n_labels) < 0.02).astype("int64"),
        }
    )
    return tables, _us(pa.Table.from_pandas(labels, preserve_index=False))


def _us(table: pa.Table) -> pa.Table:
    schema = pa.schema([f.with_type(pa.timestamp("us")) if pa.types.is_timestamp(f.type) else f for f in table.schema])
    return table.cast(schema)


def raw_sql() -> str:
    """The hand-written floor: one statement, same semantics (TTL mask, label order kept)."""
    return """
    SELECT l.*,
      CASE WHEN t.event_time >= l.event_time - INTERVAL 1 DAY THEN t.amount_sum END AS amount_sum,
      CASE WHEN t.event_time >= l.event_time - INTERVAL 1 DAY THEN t.txn_count END AS txn_count,
      CASE WHEN g.event_time >= l.event_time - INTERVAL 7 DAY THEN g.failed_logins END AS failed_logins,
      CASE WHEN g.event_time >= l.event_time - INTERVAL 7 DAY THEN g.distinct_ips END AS distinct_ips,
      p.account_age_days, p.has_2fa
    FROM raw_labels l
    ASOF LEFT JOIN fg_txn_1d_v1 t ON l.account_id = t.account_id AND l.event_time >= t.event_time
    ASOF LEFT JOIN fg_login_7d_v1 g ON l.account_id = g.account_id AND l.event_time >= g.event_time
    ASOF LEFT JOIN fg_profile_v1 p ON l.account_id = p.account_id AND l.event_time >= p.event_time
    ORDER BY l.label_id
    """


def ensure_feast() -> tuple[Path | None, str | None]:
    """Feast's interpreter, creating its venv on first run; (None, error) when it cannot be had."""
    python = FEAST_VENV / "bin" / "python"
    if python.exists() and subprocess.run([python, "-c", "import feast"], capture_output=True).returncode == 0:
        return python, None
    uv = shutil.which("uv")
    base = [uv] if uv else [sys.executable, "-m", "uv"]
    steps = [
        [*base, "venv", "-q", "--python", f"{sys.version_info.major}.{sys.version_info.minor}", str(FEAST_VENV)],
        [*base, "pip", "install", "-q", "--python", str(python), *FEAST_REQUIREMENTS],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode != 0:
            return None, f"{' '.join(map(str, step))} failed: {(done.stderr or done.stdout)[-2000:]}"
    return python, None


def mismatches(got: pd.DataFrame, want: pd.DataFrame, columns: list[str]) -> dict[str, int]:
    """Per column: rows where values differ (null vs value counts; null vs null does not)."""
    out = {}
    for col in columns:
        a, b = got[col], want[col]
        both_null = a.isna().to_numpy() & b.isna().to_numpy()
        one_null = a.isna().to_numpy() ^ b.isna().to_numpy()
        diff = ~np.isclose(a.astype("float64").fillna(0).to_numpy(), b.astype("float64").fillna(0).to_numpy())
        out[col] = int((one_null | (diff & ~both_null)).sum())
    return out


def _summary(seconds: list[float], n_labels: int) -> dict[str, Any]:
    med = statistics.median(seconds)
    return {
        "seconds": [round(s, 4) for s in seconds],
        "median_s": round(med, 4),
        "min_s": round(min(seconds), 4),
        "labels_per_s": round(n_labels / med),
    }


class FeastRunner:
    """Feast in its own interpreter, driven one timed run at a time over stdin/stdout."""

    def __init__(self, python: Path, work: Path, repeats: int) -> None:
        self.spec = {
            "workdir": str(work / "feast_repo"),
            "labels": str(work / "labels.parquet"),
            "output": str(work / "feast_out.parquet"),
            "refs": REFS,
            "groups": [
                {
                    "name": g.name,
                    "join_key": g.entity.join_key,
                    "parquet": str(work / f"{g.name}.parquet"),
                    "ttl_s": int(g.ttl.total_seconds()),
                    "features": [vars(f) for f in g.features],
                }
                for g in GROUPS
            ],
        }
        (work / "feast_spec.json").write_text(json.dumps(self.spec))
        self.proc = subprocess.Popen(
            [python, str(HERE / "feast_pit_runner.py"), str(work / "feast_spec.json")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=(work / "feast_stderr.log").open("w"),  # a file, not a pipe: Feast's chatter cannot block it
            text=True,
            env={**os.environ, "FEAST_USAGE": "False"},
        )
        self.info = self._reply()

    def _reply(self) -> dict[str, Any]:
        """Next JSON line from the runner; Feast may print its own chatter to stdout first."""
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("{"):
                return json.loads(line)
        self.proc.wait()
        raise RuntimeError(Path(self.spec["workdir"]).parent.joinpath("feast_stderr.log").read_text()[-3000:])

    def run_once(self) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write("run\n")
        self.proc.stdin.flush()
        return self._reply()

    def finish(self) -> pd.DataFrame:
        assert self.proc.stdin is not None
        self.proc.stdin.write("done\n")
        self.proc.stdin.close()
        self.proc.wait(timeout=300)
        return pd.read_parquet(self.spec["output"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply all sizes (0.01 for a smoke run)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-feast", action="store_true")
    args = parser.parse_args(argv)
    n_features, n_entities, n_labels = (int(x * args.scale) for x in (1_000_000, 50_000, 200_000))

    with tempfile.TemporaryDirectory(prefix="bench_pit_") as tmp:
        work = Path(tmp)
        tables, labels = generate(n_features, n_entities, n_labels)
        for name, table in tables.items():
            pq.write_table(table, work / f"{name}.parquet")
        pq.write_table(labels, work / "labels.parquet")

        store = DuckDBOfflineStore(work / "offline.duckdb")
        start = time.perf_counter()
        for group in GROUPS:
            store.append_features(group, tables[group.name])
        load_s = time.perf_counter() - start
        feature_rows = sum(t.num_rows for t in tables.values())

        feast: dict[str, Any] = {}
        runner: FeastRunner | None = None
        if args.skip_feast:
            feast = {"skipped": True}
        else:
            python, error = ensure_feast()
            if python is None:
                feast = {"error": error}
            else:
                try:
                    runner = FeastRunner(python, work, args.repeats)
                    feast["feast_version"] = runner.info["feast_version"]
                except RuntimeError as exc:
                    feast = {"error": str(exc)}

        con = store._con  # the raw contender runs its own SQL on the very same tables
        con.register("raw_labels", labels)
        get_training_frame(store, labels, REFS, GROUPS)  # one untimed warm-up each (Feast's is in its runner)
        con.sql(raw_sql()).to_arrow_table()
        ours_s, raw_s, feast_s, feast_rows = [], [], [], []
        ours = raw = None
        for _ in range(args.repeats):  # interleaved: a shared machine's load changes all three alike
            t0 = time.perf_counter()
            ours = get_training_frame(store, labels, REFS, GROUPS)
            ours_s.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            raw = con.sql(raw_sql()).to_arrow_table()
            raw_s.append(time.perf_counter() - t0)
            if runner is not None:
                reply = runner.run_once()
                feast_s.append(reply["seconds"])
                feast_rows.append(reply["rows"])
        t0 = time.perf_counter()
        ours_pd = get_training_frame(store, labels.to_pandas(), REFS, GROUPS)
        ours_pandas_s = time.perf_counter() - t0
        assert ours is not None and raw is not None
        ours_df, raw_df = ours.to_pandas(), raw.to_pandas()
        features = [r.split(":")[1] for r in REFS]
        labels_pd = labels.column("account_id").to_pandas()
        known = pd.concat([t.column("account_id").to_pandas() for t in tables.values()])

        result: dict[str, Any] = {
            "benchmark": "pit",
            "machine": machine_info((*DEFAULT_PACKAGES, "feast")),
            "method": f"{args.repeats} timed runs per contender, interleaved, after one untimed warm-up each",
            "data": {
                "feature_rows": feature_rows,
                "entities": n_entities,
                "labels": n_labels,
                "groups": len(GROUPS),
                "labels_without_any_feature_entity": int((~labels_pd.isin(known)).sum()),
                "ttls": {g.name: str(g.ttl) for g in GROUPS},
            },
            "riskpipe_load": {"seconds": round(load_s, 3), "rows_per_s": round(feature_rows / load_s)},
            "riskpipe": {
                **_summary(ours_s, n_labels),
                "rows_lost": n_labels - ours.num_rows,
                "pandas_in_out_s": round(ours_pandas_s, 4),
                "pandas_rows_lost": n_labels - len(ours_pd),
            },
            "raw_duckdb_asof": {
                **_summary(raw_s, n_labels),
                "rows_lost": n_labels - raw.num_rows,
                "value_mismatches_vs_riskpipe": mismatches(ours_df, raw_df, features),
            },
        }
        result["riskpipe_vs_raw"] = round(result["riskpipe"]["median_s"] / result["raw_duckdb_asof"]["median_s"], 3)
        if runner is not None:
            got = runner.finish().drop_duplicates("label_id").set_index("label_id")
            aligned = got.reindex(ours_df["label_id"]).reset_index()
            feast.update(_summary(feast_s, n_labels))
            feast["rows_returned"] = feast_rows[-1]
            feast["rows_lost"] = n_labels - int(got.index.isin(ours_df["label_id"]).sum())
            feast["value_mismatches_vs_riskpipe"] = mismatches(aligned, ours_df, features)
            result["feast_vs_riskpipe_speedup"] = round(feast["median_s"] / result["riskpipe"]["median_s"], 2)
            result["feast_vs_raw_duckdb_speedup"] = round(feast["median_s"] / result["raw_duckdb_asof"]["median_s"], 2)
        result["feast"] = feast
        store.close()

    result["goals"] = {
        "riskpipe_le_1.25x_raw": result["riskpipe_vs_raw"] <= 1.25,
        "ge_5x_faster_than_feast": result.get("feast_vs_riskpipe_speedup", 0) >= 5,
        "zero_rows_lost": result["riskpipe"]["rows_lost"] == 0,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())

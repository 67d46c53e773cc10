"""Feast's side of ``bench_pit``: runs inside the separate Feast venv (Feast conflicts with the lock).

Usage: ``<feast-python> benchmarks/feast_pit_runner.py SPEC.json``. The spec names the Parquet
files ``bench_pit`` generated, the groups (TTL, features) and how often to repeat. This script
builds a throwaway feature repo with ``offline_store: duckdb``, times
``get_historical_features(...).to_df()`` once per ``run`` line read on stdin (so the parent can
interleave all contenders in time on a shared machine), answers each with one JSON line, and
writes the last result to Parquet for the parent to check when stdin says ``done``. It imports nothing from
riskpipe on purpose: it must run with only Feast installed.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import timedelta
from pathlib import Path

import pandas as pd
from feast import Entity, FeatureStore, FeatureView, Field, FileSource
from feast.types import Bool, Float64, Int64, String

FEAST_TYPES = {"int64": Int64, "float64": Float64, "string": String, "bool": Bool}


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    repo = Path(spec["workdir"])
    repo.mkdir(parents=True, exist_ok=True)
    (repo / "feature_store.yaml").write_text(
        "project: riskpipe_bench\n"
        f"registry: {repo / 'registry.db'}\n"
        "provider: local\n"
        f"online_store:\n  type: sqlite\n  path: {repo / 'online.db'}\n"
        "offline_store:\n  type: duckdb\n"
        "entity_key_serialization_version: 3\n"
    )
    store = FeatureStore(repo_path=str(repo))
    objects: list[object] = []
    entities: dict[str, Entity] = {}
    for group in spec["groups"]:
        key = group["join_key"]
        entity = entities.setdefault(key, Entity(name=key.removesuffix("_id"), join_keys=[key]))
        source = FileSource(
            name=f"{group['name']}_src",
            path=group["parquet"],
            timestamp_field="event_time",
            created_timestamp_column="created_at",
        )
        objects.append(
            FeatureView(
                name=group["name"],
                entities=[entity],
                ttl=timedelta(seconds=group["ttl_s"]),
                source=source,
                schema=[Field(name=f["name"], dtype=FEAST_TYPES[f["dtype"]]) for f in group["features"]],
            )
        )
    store.apply([*entities.values(), *objects])

    labels = pd.read_parquet(spec["labels"])
    store.get_historical_features(entity_df=labels, features=spec["refs"]).to_df()  # untimed warm-up
    import feast

    print(json.dumps({"ready": True, "feast_version": feast.__version__}), flush=True)
    result = None
    for line in sys.stdin:  # one timed run per "run" line, so the parent can interleave contenders
        if line.strip() != "run":
            break
        start = time.perf_counter()
        result = store.get_historical_features(entity_df=labels, features=spec["refs"]).to_df()
        print(json.dumps({"seconds": time.perf_counter() - start, "rows": len(result)}), flush=True)
    if result is not None:
        result.to_parquet(spec["output"], index=False)


if __name__ == "__main__":
    main(sys.argv[1])

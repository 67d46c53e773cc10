"""The naive definition of point-in-time correctness, used as the test oracle.

Deliberately a plain loop over label rows with pandas filters: slow, obviously right, and
independent of ASOF machinery, so the DuckDB/Snowflake SQL is checked against the rule
itself. It reads the same history a store holds (one frame per group, as written).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta

import pandas as pd

from features.pit import parse_ref
from features.types import FeatureGroupLike


def oracle_training_frame(
    labels: pd.DataFrame,
    feature_refs: Sequence[str],
    groups: Mapping[str, FeatureGroupLike],
    history: Mapping[str, pd.DataFrame],
    *,
    time_col: str = "event_time",
    full_feature_names: bool = False,
) -> pd.DataFrame:
    """For each label row: per group the newest history row with event_time <= label time, within TTL.

    ``history[group]`` must already be unique on (join_key, event_time), as the store keeps it.
    """
    out = labels.reset_index(drop=True).copy()
    columns: dict[str, list[object]] = {}
    for ref in feature_refs:
        group_name, feature = parse_ref(ref)
        group = groups[group_name]
        key = group.entity.join_key
        frame = history[group_name]
        ttl = group.ttl if group.ttl and group.ttl > timedelta(0) else None
        values: list[object] = []
        for _, label in out.iterrows():
            t = label[time_col]
            candidates = frame[(frame[key] == label[key]) & (frame["event_time"] <= t)]
            if candidates.empty:
                values.append(None)
                continue
            newest = candidates.loc[candidates["event_time"].idxmax()]
            if ttl is not None and newest["event_time"] < t - ttl:
                values.append(None)
            else:
                values.append(newest[feature])
        columns[f"{group_name}__{feature}" if full_feature_names else feature] = values
    for name, values in columns.items():
        out[name] = values
    return out

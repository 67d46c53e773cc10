"""Point-in-time correct training frames: labels + feature groups -> one row per label.

``get_training_frame`` is the only way training reads features, so its guarantees are the
leakage guarantees of every model: for each label row it takes, per group, the newest feature
row of the same entity with ``event_time <= label time`` (ties at the same instant qualify),
masks values older than the group's TTL to null, and keeps every label row exactly once in the
label order (duplicates stay duplicates; entities without features get nulls). Feast's dask
store silently drops such rows; this function checks the row count before returning.

The join itself runs inside the offline store (DuckDB ``ASOF LEFT JOIN`` on the registered
frame, Snowflake ``ASOF JOIN ... MATCH_CONDITION``): Python only validates and plans.

Callers that stand for a scoring request (training examples, the skew check) look features up
``before_own_event``: serving scores a transaction before the stream has processed it, so what it
reads from the online store never includes the transaction itself.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from features.offline.arrow_utils import TS, cast_column, normalize_timestamps, to_arrow
from features.offline.base import OfflineStore
from features.offline.pit_sql import ROW_COL, PitGroup
from features.types import FeatureGroupLike, feature_dtypes, group_table, ttl_micros
from riskpipe.errors import UsageError

log = logging.getLogger(__name__)

BEFORE_OWN_EVENT = pd.Timedelta(microseconds=1)  # timestamps are microseconds everywhere (arrow_utils.TS)


def before_own_event(event_time: pd.Series) -> pd.Series:
    """The instant whose features a scoring request for an event at ``event_time`` sees: just before it.

    A windowed feature row written for an event describes ``t - W < e <= t``, i.e. it *includes* the
    event. Joining a transaction at its own time would hand training counts and sums that contain
    the transaction, while the online store at request time does not contain it yet: a train/serve
    skew the model would learn (``txn_count_1m`` is never 0 in training, often 0 in serving).
    """
    return pd.to_datetime(event_time) - BEFORE_OWN_EVENT


def parse_ref(ref: str) -> tuple[str, str]:
    """``"group:feature"`` -> ``("group", "feature")``, with an error that quotes the bad ref."""
    group, sep, feature = ref.partition(":") if isinstance(ref, str) else ("", "", "")
    if not sep or not group or not feature or ":" in feature:
        raise UsageError(f"feature ref {ref!r} must look like 'group:feature'")
    return group, feature


def _groups_by_name(groups: Mapping[str, FeatureGroupLike] | Iterable[FeatureGroupLike]) -> dict[str, FeatureGroupLike]:
    if isinstance(groups, Mapping):
        return dict(groups)
    return {g.name: g for g in groups}


def plan_pit(
    feature_refs: Sequence[str],
    groups: Mapping[str, FeatureGroupLike] | Iterable[FeatureGroupLike],
    *,
    full_feature_names: bool = False,
) -> tuple[list[PitGroup], list[str]]:
    """Resolve refs to per-group join specs and the output column names, in ref order."""
    if not feature_refs:
        raise UsageError("feature_refs is empty: name at least one 'group:feature'")
    by_name = _groups_by_name(groups)
    wanted: dict[str, list[tuple[str, str]]] = {}
    outputs: list[str] = []
    for ref in feature_refs:
        group_name, feature = parse_ref(ref)
        if group_name not in by_name:
            raise UsageError(f"feature ref {ref!r}: unknown feature group {group_name!r} (known: {sorted(by_name)})")
        dtypes = feature_dtypes(by_name[group_name])
        if feature not in dtypes:
            raise UsageError(f"feature ref {ref!r}: group {group_name!r} has no feature {feature!r}")
        out = f"{group_name}__{feature}" if full_feature_names else feature
        if out in outputs:
            hint = "" if full_feature_names else " (pass full_feature_names=True to prefix names with the group)"
            raise UsageError(f"feature ref {ref!r}: output column {out!r} appears twice{hint}")
        outputs.append(out)
        wanted.setdefault(group_name, []).append((feature, out))
    plan = [
        PitGroup(
            table=group_table(by_name[name]),
            join_key=by_name[name].entity.join_key,
            ttl_us=ttl_micros(by_name[name]),
            features=tuple(cols),
        )
        for name, cols in wanted.items()
    ]
    return plan, outputs


def _prepare_labels(labels: Any, plan: list[PitGroup], outputs: list[str], time_col: str) -> pa.Table:
    table = normalize_timestamps(to_arrow(labels, "labels"))
    names = set(table.column_names)
    if time_col not in names:
        raise UsageError(f"labels: no {time_col!r} column (the time each label's features must be as of)")
    for group in plan:
        if group.join_key not in names:
            raise UsageError(f"labels: no {group.join_key!r} column, needed to join table {group.table}")
    clash = sorted(names & (set(outputs) | {ROW_COL}))
    if clash:
        raise UsageError(f"labels: column(s) {clash} would collide with feature columns; rename them")
    times = cast_column(table, time_col, TS, "labels")
    if times.null_count:
        raise UsageError(f"labels: column {time_col!r} has {times.null_count} null value(s)")
    table = table.set_column(table.column_names.index(time_col), time_col, times)
    return table.append_column(ROW_COL, pa.array(range(table.num_rows), pa.int64()))


def _in_label_order(result: pa.Table, n: int) -> pa.Table:
    """Scatter the store's rows back to label positions (O(n), no sort), checking it is a bijection."""
    rows = result.column(ROW_COL).to_numpy()
    order = np.full(n, -1, dtype=np.int64)
    if len(rows) == n and (rows >= 0).all() and (rows < n).all():
        order[rows] = np.arange(n)
    if (order < 0).any():  # the one promise that must never silently break: one row per label
        raise RuntimeError(f"PIT join returned {len(rows)} rows that do not map one-to-one onto {n} labels")
    return result.take(order)


def get_training_frame(
    store: OfflineStore,
    labels: Any,
    feature_refs: Sequence[str],
    groups: Mapping[str, FeatureGroupLike] | Iterable[FeatureGroupLike],
    *,
    time_col: str = "event_time",
    full_feature_names: bool = False,
) -> Any:
    """Label columns (same order; timestamps as naive UTC) + one column per feature ref, point-in-time correct.

    ``labels`` is a pandas DataFrame or arrow Table with each needed join key and ``time_col``
    (naive = UTC). The result has the same type; a pandas result keeps the labels' index.
    Feature columns are named like the feature, or ``<group>__<feature>`` with ``full_feature_names``.
    """
    plan, outputs = plan_pit(feature_refs, groups, full_feature_names=full_feature_names)
    prepared = _prepare_labels(labels, plan, outputs, time_col)
    for group in plan:
        if not store.table_exists(group.table):
            raise UsageError(f"offline table {group.table} does not exist: ingest or backfill the group first")
    # The store only sees what the join needs; label payload columns never leave this process.
    keys = list(dict.fromkeys(g.join_key for g in plan))
    joined = store.point_in_time(prepared.select([ROW_COL, *keys, time_col]), plan, time_col)
    features = _in_label_order(joined, prepared.num_rows).select(outputs)
    result = prepared.drop_columns([ROW_COL])
    for name, column in zip(outputs, features.columns, strict=True):
        result = result.append_column(name, column)
    log.info(
        "training frame built",
        extra={"labels": prepared.num_rows, "features": len(outputs), "groups": [g.table for g in plan]},
    )
    if isinstance(labels, pd.DataFrame):
        frame = result.to_pandas()
        frame.index = labels.index
        return frame
    return result

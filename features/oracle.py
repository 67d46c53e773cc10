"""The naive aggregator: the truth that the batch SQL and the stream engine are tested against.

Deliberately brute force (every point scans every event, every first-seen flag scans every
earlier event), written straight from the semantics in the features.definitions docstring
with no cleverness to get wrong. It is quadratic: for tests and small samples only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import pandas as pd
import pyarrow as pa

from features.definitions.filters import is_missing, matches_all
from features.definitions.groups import WindowedFeatureGroup
from features.definitions.sources import FirstSeen, Source


def _records(events: pd.DataFrame | pa.Table) -> list[dict[str, Any]]:
    """Rows as dicts with missing values (None/NaN/NaT) as None and timestamps as naive datetimes."""
    table = events if isinstance(events, pa.Table) else pa.Table.from_pandas(events, preserve_index=False)
    return table.to_pylist()


def _first_seen(flag: FirstSeen, source: Source, rows: list[dict[str, Any]]) -> list[bool | None]:
    ts, eid = source.timestamp_column, source.id_column
    out: list[bool | None] = []
    for e in rows:
        if any(is_missing(e[k]) for k in flag.keys):
            out.append(None)
            continue
        earlier = (
            p for p in rows
            if all(p[k] == e[k] for k in flag.keys)
            and (p[ts], p[eid]) < (e[ts], e[eid])
            and p[ts] > e[ts] - flag.lookback
        )
        out.append(next(earlier, None) is None)
    return out


def with_first_seen(source: Source, events: pd.DataFrame, names: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """Event rows with the derived first-seen columns added (all of the source's, or ``names``)."""
    rows = _records(events)
    for flag in source.first_seen:
        if names is not None and flag.name not in set(names):
            continue
        for row, value in zip(rows, _first_seen(flag, source, rows), strict=True):
            row[flag.name] = value
    return rows


def aggregate(function: str, column: str | None, rows: list[Mapping[str, Any]], order: tuple[str, str]) -> Any:
    """One aggregation over the events of one window (already filtered)."""
    if function == "count":
        return len(rows)
    assert column is not None
    present = [r for r in rows if not is_missing(r[column])]
    values = [r[column] for r in present]
    if function == "count_distinct":
        return len(set(values))
    if function == "sum":
        return float(sum(values)) if values else 0.0
    if not values:
        return None
    if function == "mean":
        return sum(values) / len(values)
    if function == "min":
        return min(values)
    if function == "max":
        return max(values)
    if function == "last":
        return max(present, key=lambda r: (r[order[0]], r[order[1]]))[column]
    raise ValueError(f"unknown aggregation {function!r}")


def _evaluate(group: WindowedFeatureGroup, rows: list[dict[str, Any]], points: list[tuple[str, datetime]]
              ) -> pd.DataFrame:
    key = group.entity.join_key
    ts, eid = group.source.timestamp_column, group.source.id_column
    out = []
    for entity, as_of in sorted(set(points)):
        record: dict[str, Any] = {key: entity, "event_time": as_of}
        mine = [r for r in rows if r[key] == entity]
        for wf in group.windowed_features():
            agg = wf.aggregation
            in_window = [r for r in mine if as_of - wf.window < r[ts] <= as_of and matches_all(agg.where, r)]
            record[wf.feature.name] = aggregate(agg.function, agg.column, in_window, (ts, eid))
        out.append(record)
    columns = [key, "event_time", *(f.name for f in group.features)]
    return pd.DataFrame(out, columns=columns)


def oracle_at_points(group: WindowedFeatureGroup, events: pd.DataFrame, points: pd.DataFrame,
                     as_of_column: str = "as_of") -> pd.DataFrame:
    """What ``compute_at_points`` must return: one row per distinct point, sorted by key and time."""
    rows = with_first_seen(group.source, events, group.used_first_seen())
    key = group.entity.join_key
    pts = [(k, pd.Timestamp(t).to_pydatetime()) for k, t in zip(points[key], points[as_of_column], strict=True)]
    return _evaluate(group, rows, pts)


def oracle_range(group: WindowedFeatureGroup, events: pd.DataFrame, start: datetime, end: datetime) -> pd.DataFrame:
    """What ``compute_range`` must return: the features at every source event in ``[start, end)``."""
    rows = with_first_seen(group.source, events, group.used_first_seen())
    key, ts = group.entity.join_key, group.source.timestamp_column
    pts = [(r[key], r[ts]) for r in rows if not is_missing(r[key]) and start <= r[ts] < end]
    return _evaluate(group, rows, pts)


def _same(a: Any, b: Any) -> bool:
    if is_missing(a) or is_missing(b):
        return is_missing(a) and is_missing(b)
    if isinstance(a, float) or isinstance(b, float):
        # sums in a different order differ in the last bits; 1e-9 relative is far below any real change
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)
    return bool(a == b)


def mismatches(got: pd.DataFrame | pa.Table, expected: pd.DataFrame, limit: int = 10) -> list[str]:
    """Differences between an engine's output and the oracle's, as readable lines (empty = equal).

    Rows are compared in order (both sides sort by key and time); floats with a tiny tolerance.
    """
    columns = got.column_names if isinstance(got, pa.Table) else list(got.columns)
    if columns != list(expected.columns):
        return [f"columns differ: {columns} != {list(expected.columns)}"]
    if len(got) != len(expected):
        return [f"row counts differ: {len(got)} != {len(expected)}"]
    out = []
    left, right = _records(got), _records(expected)
    for i, (a, b) in enumerate(zip(left, right, strict=True)):
        for column in expected.columns:
            if not _same(a[column], b[column]):
                out.append(f"row {i} ({a[expected.columns[0]]} @ {a['event_time']}) {column}: "
                           f"engine {a[column]!r} != oracle {b[column]!r}")
                if len(out) >= limit:
                    return out
    return out

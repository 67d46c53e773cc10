"""SQL generation for feature groups: one builder, rendered per dialect.

A windowed group becomes one query: the points (entity key, as-of time) LEFT JOIN the
source events of the same key inside the group's longest window, GROUP BY point, and one
conditional aggregate per feature (``COUNT(CASE WHEN <window> AND <filters> THEN 1 END)``).
The LEFT JOIN keeps points with no events (count 0, mean NULL). First-seen flags are
computed in a subquery with ``LAG`` over the flag's keys, before the time restriction of the
aggregation, over enough history to cover the flag's lookback.

The window semantics (``as_of - W < event_time <= as_of``, etc.) are those of the
features.definitions docstring; the oracle (features.oracle) implements the same in pandas.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from string import Template

from features.batch.dialect import Dialect
from features.definitions.filters import Filter
from features.definitions.groups import Aggregation, SqlFeatureGroup, WindowedFeature, WindowedFeatureGroup
from features.definitions.names import seconds
from features.definitions.sources import FirstSeen, Source

KEY, AS_OF, T, ID = "__key", "__as_of", "__t", "__id"
_BINARY = {"==": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


def filter_sql(flt: Filter, alias: str, dialect: Dialect) -> str:
    """One structured filter as a SQL predicate on ``alias.field`` (NULL compares false, as in Python)."""
    col = f"{alias}.{flt.field}"
    if flt.op == "is_null":
        return f"{col} IS NULL"
    if flt.op == "not_null":
        return f"{col} IS NOT NULL"
    if flt.op in ("in", "not_in"):
        values = ", ".join(dialect.literal(v) for v in flt.values)
        return f"{col} {'IN' if flt.op == 'in' else 'NOT IN'} ({values})"
    return f"{col} {_BINARY[flt.op]} {dialect.literal(flt.value)}"


def first_seen_sql(flag: FirstSeen, source: Source, dialect: Dialect) -> str:
    """TRUE when the previous event with the same keys is older than the lookback (or absent)."""
    ts, eid = source.timestamp_column, source.id_column
    keys = ", ".join(flag.keys)
    any_null = " OR ".join(f"{k} IS NULL" for k in flag.keys)
    previous = f"LAG({ts}) OVER (PARTITION BY {keys} ORDER BY {ts}, {eid})"
    return (f"CASE WHEN {any_null} THEN NULL "
            f"WHEN {previous} > {dialect.minus_seconds(ts, seconds(flag.lookback))} THEN FALSE "
            f"ELSE TRUE END AS {flag.name}")


def _aggregate(wf: WindowedFeature, max_window: timedelta, dialect: Dialect) -> str:
    agg: Aggregation = wf.aggregation
    conditions = [f"e.{ID} IS NOT NULL"]  # excludes the NULL row of a point without events
    if wf.window < max_window:  # the join already bounds the longest window
        conditions.append(f"e.{T} > {dialect.minus_seconds(f'p.{AS_OF}', seconds(wf.window))}")
    conditions += [filter_sql(f, "e", dialect) for f in agg.where]
    cond = " AND ".join(conditions)
    col = f"e.{agg.column}" if agg.column else None
    match agg.function:
        case "count":
            expr = f"COUNT(CASE WHEN {cond} THEN 1 END)"
        case "count_distinct":
            expr = f"COUNT(DISTINCT CASE WHEN {cond} THEN {col} END)"
        case "sum":
            expr = f"COALESCE(SUM(CASE WHEN {cond} THEN {col} END), 0)"
        case "mean":
            expr = f"AVG(CASE WHEN {cond} THEN {col} END)"
        case "min" | "max":
            expr = f"{agg.function.upper()}(CASE WHEN {cond} THEN {col} END)"
        case "last":
            assert col is not None
            expr = dialect.last_value(col, cond, (f"e.{T}", f"e.{ID}"), wf.feature.dtype)
        case _:  # pragma: no cover - the Literal type makes this unreachable
            raise ValueError(f"unknown aggregation {agg.function!r}")
    return f"{expr} AS {wf.feature.name}"


def _source_sql(group: WindowedFeatureGroup, lo: datetime, hi: datetime, dialect: Dialect) -> str:
    """Events of the group's source that can fall in a window of a point in [lo, hi], keyed and flagged."""
    src = group.source
    ts, eid, key = src.timestamp_column, src.id_column, group.entity.join_key
    used_flags = [src.derived(name) for name in group.used_first_seen()]
    needed = {a.column for a in group.aggregations if a.column} | {f.field for a in group.aggregations for f in a.where}
    columns = sorted(needed - {ts, eid})
    select = ", ".join([f"{key} AS {KEY}", f"{ts} AS {T}", f"{eid} AS {ID}", *columns])
    start = dialect.timestamp(lo - group.max_window)
    end = dialect.timestamp(hi)
    if not used_flags:
        return f"SELECT {select} FROM {src.table} WHERE {key} IS NOT NULL AND {ts} > {start} AND {ts} <= {end}"
    history = dialect.timestamp(lo - group.max_window - max(f.lookback for f in used_flags if f))
    flags = ", ".join(first_seen_sql(f, src, dialect) for f in used_flags if f)
    return (f"SELECT {select} FROM (SELECT *, {flags} FROM {src.table} "
            f"WHERE {ts} > {history} AND {ts} <= {end}) s "
            f"WHERE {key} IS NOT NULL AND {ts} > {start}")


def windowed_sql(group: WindowedFeatureGroup, points_sql: str, lo: datetime, hi: datetime, dialect: Dialect) -> str:
    """Every feature of ``group`` at each point of ``points_sql`` (columns ``__key``, ``__as_of``).

    ``lo``/``hi`` bound the as-of times of the points (naive UTC); they only prune the scan.
    The output has the join key, ``event_time`` (= the as-of time) and one column per feature.
    """
    key = group.entity.join_key
    max_window = group.max_window
    aggregates = ",\n       ".join(_aggregate(wf, max_window, dialect) for wf in group.windowed_features())
    window_start = dialect.minus_seconds(f"p.{AS_OF}", seconds(max_window))
    return (
        f"WITH pts AS ({points_sql}),\n"
        f"src AS ({_source_sql(group, lo, hi, dialect)})\n"
        f"SELECT p.{KEY} AS {key}, p.{AS_OF} AS event_time,\n       {aggregates}\n"
        f"FROM pts p LEFT JOIN src e ON e.{KEY} = p.{KEY} AND e.{T} <= p.{AS_OF} AND e.{T} > {window_start}\n"
        f"GROUP BY p.{KEY}, p.{AS_OF}\n"
        f"ORDER BY 1, 2"
    )


def staged_points_sql(table: str, key_column: str, as_of_column: str) -> str:
    """Points read from a staged table of (key, as-of) rows; duplicates collapse to one point."""
    return f"SELECT DISTINCT {key_column} AS {KEY}, {as_of_column} AS {AS_OF} FROM {table}"


def event_points_sql(group: WindowedFeatureGroup, start: datetime, end: datetime, dialect: Dialect) -> str:
    """Backfill points: every (key, event time) of the source with ``start <= event_time < end``."""
    src, key = group.source, group.entity.join_key
    ts = src.timestamp_column
    return (f"SELECT DISTINCT {key} AS {KEY}, {ts} AS {AS_OF} FROM {src.table} "
            f"WHERE {key} IS NOT NULL AND {ts} >= {dialect.timestamp(start)} AND {ts} < {dialect.timestamp(end)}")


def render_sql_group(group: SqlFeatureGroup, as_of: datetime, dialect: Dialect) -> str:
    """The group's SQL for one run, wrapped to emit the storage shape (key, event_time, features)."""
    body = Template(group.sql).substitute(
        as_of=dialect.timestamp(as_of), lookback_start=dialect.timestamp(as_of - group.lookback)
    )
    key = group.entity.join_key
    features = ", ".join(f"q.{f.name}" for f in group.features)
    return f"SELECT q.{key} AS {key}, {dialect.timestamp(as_of)} AS event_time, {features} FROM ({body}) q"

"""SQL for point-in-time joins, one builder per dialect, from one plan.

Both dialects express the same rule: for each label row, the newest feature row of the same
entity whose ``event_time`` is at or before the label's time; values older than the group's
TTL are masked to NULL; a label with no match keeps its row with NULL features.

Only ``__rp_row`` (the label's position), the join keys and the time go through the joins, and
the query returns ``__rp_row`` + feature columns in whatever order the engine likes: the caller
scatters them back into label order in O(n) (``features.pit``). That avoids carrying wide label
rows through every join, a final ORDER BY sort, and (Snowflake) shipping the labels back.
The builders are pure functions so the Snowflake SQL can be asserted without an account.
"""

from __future__ import annotations

from dataclasses import dataclass

ROW_COL = "__rp_row"


@dataclass(frozen=True)
class PitGroup:
    """One feature group's part of a PIT join: which table, key, TTL and (source, output) columns."""

    table: str
    join_key: str
    ttl_us: int | None
    features: tuple[tuple[str, str], ...]  # (column in the history table, column name in the result)


def _projection(groups: tuple[PitGroup, ...] | list[PitGroup], time_col: str, ttl_expr: str) -> str:
    parts = [f"l.{ROW_COL}"]
    for i, group in enumerate(groups):
        alias = f"f{i}"
        for source, out in group.features:
            if group.ttl_us is None:
                parts.append(f"{alias}.{source} AS {out}")
            else:
                lower = ttl_expr.format(ttl=group.ttl_us, t=f"l.{time_col}")
                parts.append(f"CASE WHEN {alias}.event_time >= {lower} THEN {alias}.{source} END AS {out}")
    return ",\n  ".join(parts)


def _subquery(group: PitGroup) -> str:
    cols = ", ".join([group.join_key, "event_time", *(src for src, _ in group.features)])
    return f"(SELECT {cols} FROM {group.table})"


def _labels(labels: str, groups: list[PitGroup], time_col: str) -> str:
    keys = list(dict.fromkeys(g.join_key for g in groups))
    return f"(SELECT {', '.join([ROW_COL, *keys, time_col])} FROM {labels}) l"


def duckdb_pit_sql(labels: str, groups: list[PitGroup], time_col: str) -> str:
    """DuckDB: one native ``ASOF LEFT JOIN`` per group, chained in a single query."""
    joins = [
        f"ASOF LEFT JOIN {_subquery(g)} f{i}\n"
        f"  ON l.{g.join_key} = f{i}.{g.join_key} AND l.{time_col} >= f{i}.event_time"
        for i, g in enumerate(groups)
    ]
    projection = _projection(groups, time_col, "{t} - to_microseconds({ttl})")
    return f"SELECT {projection}\nFROM {_labels(labels, groups, time_col)}\n" + "\n".join(joins)


def snowflake_pit_sql(labels: str, groups: list[PitGroup], time_col: str) -> str:
    """Snowflake: ``ASOF JOIN ... MATCH_CONDITION`` (null-padded when nothing matches, like a left join)."""
    joins = [
        f"ASOF JOIN {_subquery(g)} f{i}\n  MATCH_CONDITION(l.{time_col} >= f{i}.event_time)\n"
        f"  ON l.{g.join_key} = f{i}.{g.join_key}"
        for i, g in enumerate(groups)
    ]
    projection = _projection(groups, time_col, "DATEADD(microsecond, -{ttl}, {t})")
    return f"SELECT {projection}\nFROM {_labels(labels, groups, time_col)}\n" + "\n".join(joins)

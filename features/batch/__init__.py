"""Batch engine: the SQL form of the feature definitions (backfills, PIT for unmaterialized groups)."""

from features.batch.dialect import DUCKDB, SNOWFLAKE, Dialect, get_dialect
from features.batch.engine import compute_at_points, compute_group, compute_range, output_schema, schedule_ticks
from features.batch.sql import render_sql_group, windowed_sql

__all__ = [
    "DUCKDB",
    "SNOWFLAKE",
    "Dialect",
    "compute_at_points",
    "compute_group",
    "compute_range",
    "get_dialect",
    "output_schema",
    "render_sql_group",
    "schedule_ticks",
    "windowed_sql",
]

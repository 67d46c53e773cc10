"""The SQL builder: one query, two dialects. String-level checks, plus the Snowflake text run on fakesnow."""

from __future__ import annotations

from datetime import datetime, timedelta

import fakesnow
import pytest
import sqlglot

from features.batch import DUCKDB, SNOWFLAKE, compute_range, get_dialect, render_sql_group, schedule_ticks
from features.batch.sql import event_points_sql, filter_sql, first_seen_sql, windowed_sql
from features.batch.synthetic import synthetic_transactions
from features.definitions import TRANSACTIONS, Filter, get_group
from features.oracle import mismatches, oracle_range

T = datetime(2024, 1, 2, 3, 4, 5, 6)


@pytest.mark.parametrize(("flt", "sql"), [
    (Filter("kind", "==", "it's"), "e.kind = 'it''s'"),
    (Filter("amount", "!=", 2.5), "e.amount <> 2.5"),
    (Filter("amount", ">=", 1000), "e.amount >= 1000"),
    (Filter("ok", "==", False), "e.ok = FALSE"),
    (Filter("kind", "in", ["a", "b"]), "e.kind IN ('a', 'b')"),
    (Filter("kind", "not_in", ["a"]), "e.kind NOT IN ('a')"),
    (Filter("kind", "is_null"), "e.kind IS NULL"),
    (Filter("kind", "not_null"), "e.kind IS NOT NULL"),
])
def test_filter_sql(flt: Filter, sql: str) -> None:
    assert filter_sql(flt, "e", DUCKDB) == sql


def test_literals_escape_per_dialect() -> None:
    assert DUCKDB.literal("a\\b'c") == "'a\\b''c'"
    assert SNOWFLAKE.literal("a\\b'c") == "'a\\\\b''c'"  # backslash is an escape character in Snowflake
    assert DUCKDB.timestamp(T) == "TIMESTAMP '2024-01-02 03:04:05.000006'"
    assert DUCKDB.minus_seconds("x", 60) == "(x - INTERVAL 60 SECOND)"
    assert SNOWFLAKE.minus_seconds("x", 60) == "DATEADD(second, -60, x)"
    with pytest.raises(ValueError, match="naive UTC"):
        DUCKDB.timestamp(T.astimezone())
    with pytest.raises(ValueError, match="unknown SQL dialect 'oracle'"):
        get_dialect("oracle")


def test_first_seen_sql_compares_the_previous_occurrence_with_the_lookback() -> None:
    flag = TRANSACTIONS.derived("is_new_withdrawal_address")
    assert flag is not None
    sql = first_seen_sql(flag, TRANSACTIONS, DUCKDB)
    assert "LAG(event_time) OVER (PARTITION BY account_id, withdrawal_address ORDER BY event_time, event_id)" in sql
    assert "(event_time - INTERVAL 7776000 SECOND) THEN FALSE" in sql
    assert sql.startswith("CASE WHEN account_id IS NULL OR withdrawal_address IS NULL THEN NULL")


@pytest.mark.parametrize("name", ["account_txn_velocity", "account_withdrawals", "counterparty_inbound"])
def test_one_builder_renders_both_dialects(name: str) -> None:
    group = get_group(name)
    start, end = datetime(2024, 1, 2), datetime(2024, 1, 3)
    duck = windowed_sql(group, event_points_sql(group, start, end, DUCKDB), start, end, DUCKDB)
    snow = windowed_sql(group, event_points_sql(group, start, end, SNOWFLAKE), start, end, SNOWFLAKE)
    # same shape: same aggregates, same grouping; only the dialect's pieces differ
    for token in ("COUNT(", "SUM(", "AVG(", "LAG(", "LEFT JOIN src e ON"):
        assert duck.count(token) == snow.count(token), token
    assert duck.splitlines()[-2:] == snow.splitlines()[-2:] == ["GROUP BY p.__key, p.__as_of", "ORDER BY 1, 2"]
    assert "INTERVAL" not in snow and "arg_max" not in snow and "FILTER (WHERE" not in snow
    assert "DATEADD" not in duck and "ARRAY_AGG" not in duck
    for sql, dialect in ((duck, "duckdb"), (snow, "snowflake")):
        sqlglot.parse_one(sql, read=dialect)  # syntactically valid in its dialect
        assert all(f" AS {f.name}" in sql for f in group.features)


def test_last_value_per_dialect() -> None:
    group = get_group("account_txn_velocity")
    duck = windowed_sql(group, "SELECT 1", T, T, DUCKDB)
    snow = windowed_sql(group, "SELECT 1", T, T, SNOWFLAKE)
    assert "arg_max(e.txn_type, (e.__t, e.__id)) FILTER (WHERE" in duck
    assert "WITHIN GROUP (ORDER BY e.__t DESC, e.__id DESC))[0]::VARCHAR AS last_txn_type_24h" in snow
    assert "))[0]::FLOAT AS last_txn_amount_24h" in snow


def test_sql_group_rendering_substitutes_the_run_times() -> None:
    group = get_group("account_profile_nightly")
    sql = render_sql_group(group, datetime(2024, 2, 1), SNOWFLAKE)
    assert "event_time > TIMESTAMP '2024-01-02 00:00:00.000000' AND event_time <= TIMESTAMP '2024-02-01" in sql
    assert sql.startswith("SELECT q.account_id AS account_id, TIMESTAMP '2024-02-01 00:00:00.000000' AS event_time")
    assert "$" not in sql


def test_schedule_ticks() -> None:
    hourly, nightly = get_group("ip_hourly"), get_group("account_profile_nightly")
    ticks = schedule_ticks(hourly, datetime(2024, 1, 1, 10, 30), datetime(2024, 1, 1, 13, 0))
    assert ticks == [datetime(2024, 1, 1, 11), datetime(2024, 1, 1, 12)]  # end is exclusive
    assert schedule_ticks(hourly, datetime(2024, 1, 1, 10), datetime(2024, 1, 1, 11))[0] == datetime(2024, 1, 1, 10)
    days = schedule_ticks(nightly, datetime(2024, 1, 1, 1), datetime(2024, 1, 4))
    assert days == [datetime(2024, 1, 2), datetime(2024, 1, 3)]


@pytest.mark.parametrize("name", ["account_txn_velocity", "account_withdrawals", "counterparty_inbound"])
def test_snowflake_dialect_runs_on_fakesnow_and_matches_the_oracle(name: str) -> None:
    """fakesnow transpiles Snowflake SQL to DuckDB: it proves the text parses and means the same thing."""
    from features.offline.snowflake_store import SnowflakeOfflineStore

    group = get_group(name)
    events = synthetic_transactions(150, seed=7, span=timedelta(days=2), accounts=3)
    start, end = datetime(2024, 1, 1, 12), datetime(2024, 1, 2, 12)
    with fakesnow.patch():
        store = SnowflakeOfflineStore(account="fake", user="fake", password="fake", database="riskpipe",
                                      schema="riskpipe")
        try:
            store.append("events_transactions", events)
            got = compute_range(store, group, start, end)
        finally:
            store.close()
    expected = oracle_range(group, events, start, end)
    assert len(expected) > 10
    assert mismatches(got, expected) == []

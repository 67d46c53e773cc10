"""The OfflineStore contract, run over every backend (DuckDB file, Snowflake via fakesnow).

Like Feast's universal suite: one set of behaviours, each backend must pass all of them, so
callers (batch engine, ingestion, sync, training) never need to know which store they hold.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from features.offline import DuckDBOfflineStore, OfflineStore
from features.testing import stub_group
from riskpipe.errors import UsageError

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore::UserWarning")]

T0 = datetime(2024, 5, 1, 8, 0)
GROUP = stub_group(
    "acct_txn",
    "account_id",
    timedelta(hours=2),
    amount_sum="float64",
    txn_count="int64",
    last_country="string",
    new_device="bool",
)


@pytest.fixture(params=["duckdb", "snowflake"])
def store(request: pytest.FixtureRequest, tmp_path: Path, unique: str) -> Iterator[OfflineStore]:
    if request.param == "duckdb":
        s: OfflineStore = DuckDBOfflineStore(tmp_path / "offline.duckdb")
        yield s
        s.close()
        return
    import fakesnow

    from features.offline.snowflake_store import SnowflakeOfflineStore

    (tmp_path / "fakesnow").mkdir()
    with fakesnow.patch(db_path=tmp_path / "fakesnow"):
        s = SnowflakeOfflineStore(
            account="fake", user="fake", database="DB_" + re.sub(r"\W", "_", unique).upper(), schema="RISKPIPE"
        )
        yield s
        s.close()


def _batch(keys: list[str], minutes: list[int], counts: list[int]) -> pa.Table:
    return pa.table(
        {
            "account_id": keys,
            "event_time": [T0 + timedelta(minutes=m) for m in minutes],
            "amount_sum": [c * 1.5 for c in counts],
            "txn_count": counts,
            "last_country": ["DE"] * len(keys),
            "new_device": [c % 2 == 0 for c in counts],
        }
    )


def test_append_creates_table_by_name_and_converts_aware_times_to_naive_utc(store: OfflineStore) -> None:
    assert not store.table_exists("events_logins")
    plus2 = timezone(timedelta(hours=2))
    first = pa.table(
        {
            "event_id": ["e1"],
            "account_id": ["a"],
            "success": [True],
            "event_time": pa.array([datetime(2024, 1, 1, 2, 0, tzinfo=plus2)], pa.timestamp("us", "UTC")),
        }
    )
    assert store.append("events_logins", first) == 1
    reordered = pd.DataFrame(
        {"success": [False], "event_time": [pd.Timestamp("2024-01-01 00:30")], "account_id": ["b"], "event_id": ["e2"]}
    )
    assert store.append("events_logins", reordered) == 1
    assert store.table_exists("events_logins")
    out = store.query("SELECT event_id, account_id, success, event_time FROM events_logins ORDER BY event_id")
    assert out.column_names == ["event_id", "account_id", "success", "event_time"]
    assert out.column("event_time").to_pylist() == [datetime(2024, 1, 1, 0, 0), datetime(2024, 1, 1, 0, 30)]
    assert out.column("success").to_pylist() == [True, False]


def test_query_and_execute_bind_qmark_params(store: OfflineStore) -> None:
    store.append("labels", pa.table({"event_id": ["x", "y", "z"], "n": [1, 2, 3]}))
    store.execute("DELETE FROM labels WHERE n = ?", [2])
    got = store.query("SELECT event_id FROM labels WHERE n >= ? ORDER BY event_id", [1])
    assert got.column("event_id").to_pylist() == ["x", "z"]


def test_append_features_is_idempotent_and_first_write_wins(store: OfflineStore) -> None:
    batch = _batch(["a", "a", "b"], [0, 5, 0], [1, 2, 3])
    assert store.append_features(GROUP, batch) == 3
    assert store.append_features(GROUP, batch) == 0  # redelivery: exactly-once effect
    # same keys with other values (a late duplicate) + one new row + an in-batch duplicate
    again = _batch(["a", "b", "c", "c"], [5, 1, 0, 0], [99, 4, 5, 6])
    assert store.append_features(GROUP, again) == 2
    rows = store.query("SELECT account_id, event_time, txn_count FROM fg_acct_txn_v1 ORDER BY account_id, event_time")
    assert rows.column("txn_count").to_pylist() == [1, 2, 3, 4, 5]


def test_append_features_fills_created_at_and_missing_features(store: OfflineStore) -> None:
    partial = pa.table({"account_id": ["a"], "event_time": [T0], "txn_count": [7]})
    assert store.append_features(GROUP, partial) == 1
    row = store.query("SELECT * FROM fg_acct_txn_v1").to_pylist()[0]
    assert row["txn_count"] == 7 and row["amount_sum"] is None and row["last_country"] is None
    assert row["created_at"] is not None
    assert abs(row["created_at"] - datetime.now(UTC).replace(tzinfo=None)) < timedelta(hours=1)


def test_latest_features_returns_newest_row_per_entity(store: OfflineStore) -> None:
    assert store.latest_features(GROUP).num_rows == 0  # no table yet: empty, typed
    store.append_features(GROUP, _batch(["a", "a", "b", "b", "c"], [0, 30, 10, 5, 60], [1, 2, 3, 4, 5]))
    latest = {r["account_id"]: r["txn_count"] for r in store.latest_features(GROUP).to_pylist()}
    assert latest == {"a": 2, "b": 3, "c": 5}
    as_of = {
        r["account_id"]: r["txn_count"]
        for r in store.latest_features(GROUP, as_of=T0 + timedelta(minutes=10)).to_pylist()
    }
    assert as_of == {"a": 1, "b": 3}
    aware = datetime(2024, 5, 1, 10, 5, tzinfo=timezone(timedelta(hours=2)))  # = T0 + 5 min in UTC
    assert {r["account_id"] for r in store.latest_features(GROUP, as_of=aware).to_pylist()} == {"a", "b"}


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (pa.table({"event_time": [T0]}), "no join key column 'account_id'"),
        (pa.table({"account_id": ["a"]}), "no 'event_time' column"),
        (pa.table({"account_id": ["a"], "event_time": [T0], "bogus": [1]}), r"unknown column\(s\) \['bogus'\]"),
        (pa.table({"account_id": ["a"], "event_time": [T0], "txn_count": ["lots"]}), "column 'txn_count'"),
        (pa.table({"account_id": [None, "b"], "event_time": [T0, T0]}), "'account_id' has 1 null"),
    ],
)
def test_bad_feature_batches_are_usage_errors(store: OfflineStore, table: pa.Table, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        store.append_features(GROUP, table)


def test_bad_table_names_are_refused(store: OfflineStore) -> None:
    with pytest.raises(UsageError, match="not a valid identifier"):
        store.append("x; DROP TABLE y", pa.table({"a": [1]}))

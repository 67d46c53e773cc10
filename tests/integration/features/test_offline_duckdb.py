"""DuckDB backend specifics: the file under the data dir, persistence, raw event tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from events.contracts import Transaction
from features.offline import DuckDBOfflineStore, get_offline_store
from features.testing import stub_group
from riskpipe.settings import Settings

pytestmark = pytest.mark.integration


def test_default_backend_is_a_duckdb_file_under_the_data_dir_and_persists(settings: Settings) -> None:
    group = stub_group("g", "account_id", x="float64")
    store = get_offline_store(settings)
    assert isinstance(store, DuckDBOfflineStore)
    store.append_features(group, pa.table({"account_id": ["a"], "event_time": [datetime(2024, 1, 1)], "x": [0.5]}))
    store.close()
    assert settings.duckdb_path is not None and settings.duckdb_path.is_file()
    assert str(settings.duckdb_path).startswith(str(settings.data_dir))

    with get_offline_store(settings) as reopened:
        assert reopened.table_exists("fg_g_v1")
        assert reopened.latest_features(group).column("x").to_pylist() == [0.5]


def test_contract_events_load_into_their_raw_table() -> None:
    events = [
        Transaction(
            event_id=f"e{i}",
            event_time=datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=i),
            account_id="a",
            txn_type="p2p_transfer",
            amount=10.0 + i,
            currency="EUR",
            device_id="d",
            ip="1.2.3.4",
            country="DE",
            channel="web",
        )
        for i in range(3)
    ]
    store = DuckDBOfflineStore()
    table = pa.Table.from_pylist([e.model_dump() for e in events])
    assert store.append(Transaction.table, table) == 3
    out = store.query(f"SELECT event_id, event_time, amount FROM {Transaction.table} ORDER BY event_id")
    assert out.schema.field("event_time").type == pa.timestamp("us")  # naive UTC at the boundary
    assert out.column("event_time").to_pylist()[2] == datetime(2024, 1, 1, 0, 0, 2)
    assert out.column("amount").to_pylist() == [10.0, 11.0, 12.0]

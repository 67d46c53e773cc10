"""Raw-table DDL follows the event contracts, so a new contract field becomes a column."""

from __future__ import annotations

import re

import duckdb

from events.contracts import Transaction
from riskpipe.stack.offline import RAW_TABLES, create_table_sql


def test_ddl_has_every_contract_field_with_portable_types() -> None:
    sql = create_table_sql(Transaction)
    for field in Transaction.model_fields:
        assert re.search(rf"[ (]{field} [A-Z]+", sql), field
    assert "event_time TIMESTAMP" in sql and "amount DOUBLE" in sql and "counterparty_id VARCHAR" in sql


def test_ddl_runs_on_duckdb_and_is_idempotent() -> None:
    con = duckdb.connect()
    for model in RAW_TABLES:
        con.execute(create_table_sql(model))
        con.execute(create_table_sql(model))
        cols = [r[0] for r in con.execute(f"describe {model.table}").fetchall()]
        assert cols == list(model.model_fields)

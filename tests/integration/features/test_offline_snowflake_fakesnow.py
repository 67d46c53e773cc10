"""Snowflake backend specifics, on fakesnow (DuckDB underneath) where fakesnow can run them.

The shared verbs run in ``test_offline_contract.py``. fakesnow cannot parse
``ASOF JOIN ... MATCH_CONDITION``, so here the PIT path is checked up to the query: labels are
staged faithfully (temporary table + write_pandas) and the query sent is the generated SQL,
whose text and semantics are covered in ``test_pit_sql.py`` and ``test_pit_duckdb.py``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from pydantic import SecretStr

from features.offline import get_offline_store
from features.offline.pit_sql import snowflake_pit_sql
from features.offline.snowflake_store import SnowflakeOfflineStore, create_table_sql
from features.pit import get_training_frame, plan_pit
from features.testing import stub_group
from riskpipe.errors import UsageError
from riskpipe.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore::UserWarning")]

T0 = datetime(2024, 5, 1, 8, 0)
GROUP = stub_group("acct", "account_id", timedelta(hours=1), n="int64")


@pytest.fixture
def sf_settings(settings: Settings, unique: str) -> Settings:
    return settings.model_copy(
        update={
            "offline_backend": "snowflake",
            "snowflake_account": "acme-test",
            "snowflake_user": "riskpipe",
            "snowflake_password": SecretStr("not-a-secret"),
            "snowflake_database": "DB_" + re.sub(r"\W", "_", unique).upper(),
        }
    )


@pytest.fixture
def fake_snowflake(tmp_path: Path) -> Iterator[None]:
    import fakesnow

    (tmp_path / "fakesnow").mkdir()
    with fakesnow.patch(db_path=tmp_path / "fakesnow"):
        yield


def test_get_offline_store_builds_snowflake_from_settings(fake_snowflake: None, sf_settings: Settings) -> None:
    store = get_offline_store(sf_settings)
    assert isinstance(store, SnowflakeOfflineStore)
    store.append("labels", pa.table({"event_id": ["e"], "event_time": [T0]}))
    assert store.query("SELECT current_schema() AS s").column("s").to_pylist() == ["RISKPIPE"]
    store.close()


def test_missing_credentials_name_the_env_vars(settings: Settings) -> None:
    with pytest.raises(UsageError, match="RISKPIPE_SNOWFLAKE_ACCOUNT, RISKPIPE_SNOWFLAKE_USER"):
        get_offline_store(settings.model_copy(update={"offline_backend": "snowflake"}))


def test_create_table_sql_maps_arrow_types() -> None:
    schema = pa.schema(
        [
            ("k", pa.string()),
            ("t", pa.timestamp("us")),
            ("n", pa.int64()),
            ("x", pa.float64()),
            ("b", pa.bool_()),
            ("d", pa.date32()),
        ]
    )
    assert create_table_sql("fg_a_v1", schema) == (
        "CREATE TABLE IF NOT EXISTS fg_a_v1 (k VARCHAR, t TIMESTAMP_NTZ, n NUMBER(38,0), x FLOAT, b BOOLEAN, d DATE)"
    )
    with pytest.raises(UsageError, match="column 'l'"):
        create_table_sql("t", pa.schema([("l", pa.list_(pa.int64()))]))


def test_pit_stages_labels_faithfully_and_sends_the_generated_asof_sql(
    fake_snowflake: None, sf_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SnowflakeOfflineStore.from_settings(sf_settings)
    store.append_features(GROUP, pa.table({"account_id": ["a"], "event_time": [T0], "n": [1]}))
    labels = pd.DataFrame({"account_id": ["a", "b", "a"], "event_time": [T0, T0, T0 + timedelta(hours=2)]})

    sent: list[str] = []
    staged: list[list[dict]] = []
    original = store.query

    def spy(sql: str, params=None) -> pa.Table:  # type: ignore[no-untyped-def]
        if "MATCH_CONDITION" not in sql:
            return original(sql, params)
        sent.append(sql)
        stage = re.search(r"FROM (rp_stage_\w+)\) l", sql).group(1)  # type: ignore[union-attr]
        staged.append(original(f"SELECT * FROM {stage} ORDER BY __rp_row").to_pylist())
        raise LookupError("stop here: fakesnow cannot parse ASOF JOIN")

    monkeypatch.setattr(store, "query", spy)
    with pytest.raises(LookupError):
        get_training_frame(store, labels, ["acct:n"], [GROUP])

    stage = re.search(r"FROM (rp_stage_\w+)\) l", sent[0]).group(1)  # type: ignore[union-attr]
    plan, _ = plan_pit(["acct:n"], [GROUP])
    assert sent == [snowflake_pit_sql(stage, plan, "event_time")]
    assert staged == [
        [
            {"account_id": "a", "event_time": T0, "__rp_row": 0},
            {"account_id": "b", "event_time": T0, "__rp_row": 1},
            {"account_id": "a", "event_time": T0 + timedelta(hours=2), "__rp_row": 2},
        ]
    ]
    assert not store.table_exists(stage)  # the temporary table is dropped even when the query fails
    store.close()

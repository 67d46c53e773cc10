"""FeatureStoreHook: DuckDB opened per call (waiting out another writer), Snowflake via SnowflakeHook + fakesnow."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from features.offline_access import open_duckdb_store
from riskpipe.errors import UsageError
from riskpipe.settings import Settings
from riskpipe.stack.airflow import airflow_connections

pytestmark = pytest.mark.integration

HOLD = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1]); con.execute("CREATE TABLE IF NOT EXISTS x (a INT)")
print("locked", flush=True); time.sleep(float(sys.argv[2])); con.close()
"""


def _hold_lock(path: Path, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def test_duckdb_store_waits_for_another_writer(tmp_path: Path) -> None:
    path = tmp_path / "offline.duckdb"
    holder = _hold_lock(path, 1.5)
    try:
        store = open_duckdb_store(path, wait_s=30)
        store.close()
        assert holder.poll() is not None  # we only got in once the other process let go
    finally:
        holder.wait(10)


def test_duckdb_lock_timeout_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "offline.duckdb"
    holder = _hold_lock(path, 5)
    try:
        with pytest.raises(UsageError, match="stayed locked by another process"):
            open_duckdb_store(path, wait_s=0.3)
    finally:
        holder.kill()
        holder.wait(10)


def test_snowflake_backend_goes_through_snowflake_hook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The production path with fakesnow standing in for Snowflake: the connection comes from the
    Airflow connection that ``airflow_connections`` builds, through the provider's SnowflakeHook."""
    import fakesnow

    from plugins.feature_store_hook import FeatureStoreHook

    settings = Settings(data_dir=tmp_path, offline_backend="snowflake", snowflake_account="acme",
                        snowflake_user="svc", snowflake_password="secret-pw", snowflake_database="RISKDB")
    for name, value in airflow_connections(settings).items():
        monkeypatch.setenv(name, value)
    conn_json = json.loads(airflow_connections(settings)["AIRFLOW_CONN_RISKPIPE_SNOWFLAKE"])
    assert conn_json["extra"] == {"account": "acme", "database": "RISKDB"}

    (tmp_path / "fakesnow").mkdir()
    with fakesnow.patch(db_path=str(tmp_path / "fakesnow")):
        hook = FeatureStoreHook(settings=settings)
        with hook.offline() as store:
            assert store.dialect == "snowflake"
            store.append("sync_probe", pa.table({"k": ["a", "b"], "v": [1, 2]}))
            got = store.query("SELECT k, v FROM sync_probe WHERE v > ? ORDER BY k", [1]).to_pylist()
            assert got == [{"k": "b", "v": 2}]
            assert store.table_exists("sync_probe")

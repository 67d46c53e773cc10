"""`riskpipe simulate --history` end to end: the real DuckDB offline store and the lake on disk."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import duckdb
import pytest

from events.lake import read_topic
from riskpipe import cli
from riskpipe.settings import get_settings

pytestmark = pytest.mark.integration


def test_history_run_fills_offline_store_and_lake(monkeypatch, capsys, tmp_path: Path) -> None:
    data_dir = tmp_path / "riskpipe"
    monkeypatch.setenv("RISKPIPE_DATA_DIR", str(data_dir))
    get_settings.cache_clear()
    monkeypatch.setattr(sys, "argv", ["riskpipe", "simulate", "--history", "1", "--accounts", "300", "--fraud-rate",
                                      "0.05", "--start", "2026-01-01", "--label-delay-median", "2", "--json"])
    try:
        with pytest.raises(SystemExit) as exit_info:
            cli.main()
    finally:
        get_settings.cache_clear()
    out = capsys.readouterr().out
    assert exit_info.value.code == 0, out
    report = json.loads(out)
    con = duckdb.connect(str(data_dir / "offline.duckdb"), read_only=True)
    counts = {t: con.execute(f"select count(*) from {t}").fetchone()[0]
              for t in ("events_transactions", "events_logins", "events_account_changes", "labels")}
    con.close()
    assert counts == {k: report["rows"][k] for k in counts}
    assert counts["events_transactions"] > 1000 and counts["labels"] > 0
    assert list((data_dir / "lake" / "events.transactions").glob("dt=2026-01-01/hour=*/*.parquet"))
    lake_labels = read_topic(str(data_dir / "lake"), "labels.fraud")
    assert lake_labels.num_rows == counts["labels"]

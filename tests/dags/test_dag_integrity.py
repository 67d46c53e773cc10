"""The DAG folder parses cleanly, with the schedules, params and tasks the design promises.

Parsing happens in-process (DagBag), with the stores made to explode: a DAG file that opens
DuckDB, Redis or Snowflake at import time (top-level heavy work) shows up as an import error.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from features.definitions.catalog import FEATURE_GROUPS
from riskpipe.settings import REPO_ROOT

DAGS = {"features_batch_hourly", "features_batch_nightly", "features_backfill", "features_sync"}


def _explode(*_: Any, **__: Any) -> None:
    raise AssertionError("a DAG file touched a store at parse time")


@pytest.fixture(scope="module")
def dagbag() -> Iterator[Any]:
    from airflow.dag_processing.dagbag import DagBag

    with pytest.MonkeyPatch.context() as mp:
        import duckdb
        import redis

        mp.setattr(duckdb, "connect", _explode)
        mp.setattr(redis.Redis, "from_url", _explode)
        mp.setattr("features.offline_access.open_offline_store", _explode)
        mp.setattr("snowflake.connector.connect", _explode)
        yield DagBag(dag_folder=str(REPO_ROOT / "dags"))


def _ours(dagbag: Any) -> dict[str, Any]:
    return {dag_id: dag for dag_id, dag in dagbag.dags.items() if dag_id in DAGS}


def test_no_import_errors_and_all_dags_present(dagbag: Any) -> None:
    mine = {p: e for p, e in dagbag.import_errors.items()
            if Path(p).name in {"batch_features.py", "backfill.py", "sync.py", "_features_common.py"}}
    assert mine == {}
    assert set(_ours(dagbag)) == DAGS


def test_batch_dags_have_one_task_per_scheduled_group(dagbag: Any) -> None:
    dags = _ours(dagbag)
    for schedule, cron in (("hourly", "0 * * * *"), ("nightly", "0 0 * * *")):
        dag = dags[f"features_batch_{schedule}"]
        expected = {f"materialize_{g.name}" for g in FEATURE_GROUPS if g.schedule == schedule}
        assert expected and {t.task_id for t in dag.tasks} == expected
        assert dag.timetable.expression == cron  # real data intervals, not trigger-only
        assert type(dag.timetable).__name__ == "CronDataIntervalTimetable"
        assert dag.catchup is False and dag.max_active_runs == 1


def test_backfill_form_lists_the_catalog_and_maps_over_days(dagbag: Any) -> None:
    dag = _ours(dagbag)["features_backfill"]
    assert type(dag.timetable).__name__ == "NullTimetable"  # triggered from the UI / API only
    params = dag.params
    groups = params.get_param("groups").schema
    assert groups["items"]["enum"] == [g.name for g in FEATURE_GROUPS]
    assert groups["examples"] == [g.name for g in FEATURE_GROUPS]
    assert params.get_param("start").schema["format"] == "date"
    assert params.get_param("end").schema["format"] == "date"
    assert params.get_param("dry_run").value is False
    backfill_day = dag.get_task("backfill_day")
    assert type(backfill_day).__name__ == "MappedOperator"  # .expand over the days
    assert {t.task_id for t in dag.tasks} >= {"resolve", "split_days", "backfill_day", "publish_backfill_events"}


def test_sync_runs_every_ten_minutes_mapped_per_group(dagbag: Any) -> None:
    dag = _ours(dagbag)["features_sync"]
    assert dag.timetable.expression == "*/10 * * * *"
    assert type(dag.get_task("sync_group")).__name__.endswith("MappedOperator")
    assert dag.max_active_runs == 1
    assert dag.get_task("publish_alerts").topic == "alerts"


def test_retries_are_bounded(dagbag: Any) -> None:
    for dag in _ours(dagbag).values():
        for task in dag.tasks:
            assert task.retries <= 1
            assert task.execution_timeout is None or task.execution_timeout <= timedelta(hours=2)

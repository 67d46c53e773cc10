"""Batch feature DAGs, generated from the definitions: one DAG per schedule, one task per group.

``features_batch_hourly`` and ``features_batch_nightly`` run every SQL feature group declared
with that schedule (``features/definitions/catalog.py``): compute on the OLAP source (DuckDB
embedded, Snowflake through the provider's hook in production), validate the written batch
(Great Expectations), then publish the newest values to Redis. A new group in the catalog
gets its task without touching this file.

Data intervals are real (``CronDataIntervalTimetable``): the run for ``[10:00, 11:00)`` starts
at 11:00 and computes the 11:00 tick (see ``features.materialize``).
"""

from __future__ import annotations

from airflow.sdk import DAG, CronDataIntervalTimetable

from dags._features_common import DEFAULT_ARGS, START_DATE, TAGS
from features.materialize import batch_groups
from plugins.materialize_operator import MaterializeOperator

CRON = {"hourly": "0 * * * *", "nightly": "0 0 * * *"}

for _schedule, _cron in CRON.items():
    with DAG(
        dag_id=f"features_batch_{_schedule}",
        description=f"{_schedule} SQL feature groups: compute -> validate -> offline + online",
        schedule=CronDataIntervalTimetable(_cron, timezone="UTC"),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args=DEFAULT_ARGS,
        tags=[*TAGS, "batch", _schedule],
        doc_md=__doc__,
    ) as _dag:
        for _group in batch_groups(_schedule):
            MaterializeOperator(task_id=f"materialize_{_group.name}", group_name=_group.name,
                                doc_md=_group.description)

"""``features_backfill``: recompute feature groups over a date range, triggered from the UI form.

Form (Params): feature groups (multi-select built from the catalog when this file is parsed),
start and end dates (inclusive), dry run, and "include the registry plan" (also backfill the
groups whose definition changed, then record the plan). The range is split into days and
each day is one mapped ``BackfillOperator`` task (``.expand``): a failed day is retried alone.
Idempotent: a day is deleted and rewritten, so a rerun leaves the same values.
Finally a ``feature_group_backfilled`` event per group goes to Kafka (``registry.events``)
through the Kafka provider's ``ProduceToTopicOperator``.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.apache.kafka.operators.produce import ProduceToTopicOperator
from airflow.sdk import DAG, Param, task

from dags._features_common import DEFAULT_ARGS, START_DATE, TAGS, kafka_conn_id, writer_slots
from features.backfill import REGISTRY_EVENTS_TOPIC, group_names
from plugins.backfill_operator import BackfillOperator

GROUP_NAMES = group_names()

with DAG(
    dag_id="features_backfill",
    description="Recompute feature groups over a date range (one mapped task per day), idempotently",
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    default_args=DEFAULT_ARGS,
    tags=[*TAGS, "backfill"],
    doc_md=__doc__,
    params={
        "groups": Param([], type="array", items={"type": "string", "enum": GROUP_NAMES}, examples=GROUP_NAMES,
                        title="Feature groups", description="Groups to recompute (from the feature catalog)."),
        "start": Param(type="string", format="date", title="Start date", description="First day (UTC)."),
        "end": Param(type="string", format="date", title="End date", description="Last day (UTC), inclusive."),
        "dry_run": Param(False, type="boolean", title="Dry run",
                         description="Compute and count rows per day without writing."),
        "include_plan": Param(False, type="boolean", title="Include the registry plan",
                              description="Also backfill groups the registry plan marks as new or changed, "
                                          "then apply the plan."),
    },
) as dag:

    @task(multiple_outputs=True)
    def resolve(params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Validate the form and list the days; fails with one line naming a bad field."""
        from features.backfill import parse_request, resolve_groups
        from plugins.feature_store_hook import FeatureStoreHook

        request = parse_request({k: (params or {}).get(k) for k in ("groups", "start", "end", "dry_run",
                                                                      "include_plan")})
        if request.include_plan:
            with FeatureStoreHook().offline() as store:
                groups = resolve_groups(request, store)
        else:
            groups = resolve_groups(request)
        return {"groups": groups, "dry_run": request.dry_run, "request": request.model_dump(mode="json")}

    @task
    def split_days(request: dict[str, Any]) -> list[str]:
        """One ISO day per mapped backfill task."""
        from datetime import date

        from features.backfill import day_slices

        return day_slices(date.fromisoformat(request["start"]), date.fromisoformat(request["end"]))

    @task
    def summarize_days(results: Any) -> dict[str, Any]:
        from features.backfill import summarize

        return summarize(list(results))

    @task
    def record_plan(request: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any] | None:
        """After a real backfill with include_plan: register the versions that were just filled."""
        from features.backfill import apply_plan
        from plugins.feature_store_hook import FeatureStoreHook

        if not request["include_plan"] or request["dry_run"]:
            return None
        with FeatureStoreHook().offline() as store:
            return apply_plan(store)

    resolved = resolve()
    days = BackfillOperator.partial(
        task_id="backfill_day", group_names=resolved["groups"], dry_run=resolved["dry_run"],
        max_active_tis_per_dagrun=writer_slots(),
    ).expand(day=split_days(resolved["request"]))
    summary = summarize_days(days.output)
    recorded = record_plan(resolved["request"], summary)
    publish = ProduceToTopicOperator(
        task_id="publish_backfill_events",
        kafka_config_id=kafka_conn_id(),
        topic=REGISTRY_EVENTS_TOPIC,
        producer_function="features.backfill.backfill_events",
        producer_function_kwargs={"summary": summary, "request": resolved["request"]},
    )
    recorded >> publish

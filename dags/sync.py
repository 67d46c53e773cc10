"""``features_sync`` every 10 minutes: online <-> offline reconciliation of every feature group.

One mapped task per group (``.expand``): repair stream values missing offline, measure
freshness and online/offline mismatch, materialize batch groups, record a ``sync_runs`` row
(see ``features.sync``). Then alerts for stale or mismatched groups go to the ``alerts`` topic
through the Kafka provider's ``ProduceToTopicOperator`` (nothing is sent when all is well).
"""

from __future__ import annotations

from typing import Any

from airflow.providers.apache.kafka.operators.produce import ProduceToTopicOperator
from airflow.sdk import DAG, task

from dags._features_common import DEFAULT_ARGS, START_DATE, TAGS, kafka_conn_id, writer_slots
from features.backfill import group_names
from riskpipe.topics import ALERTS_TOPIC

with DAG(
    dag_id="features_sync",
    description="Every 10 min: repair offline from online, freshness + mismatch per group, materialize batch groups",
    schedule="*/10 * * * *",
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args={**DEFAULT_ARGS, "retries": 0},  # the next run is 10 minutes away
    tags=[*TAGS, "sync", "monitoring"],
    doc_md=__doc__,
) as dag:

    @task(max_active_tis_per_dagrun=writer_slots())
    def sync_group(group_name: str, run_id: str | None = None) -> dict[str, Any]:
        from features.definitions.catalog import get_group
        from features.sync import sync_group as run_sync
        from plugins.feature_store_hook import FeatureStoreHook

        hook = FeatureStoreHook()
        with hook.offline() as store:
            return run_sync(store, hook.online(), get_group(group_name), run_id=str(run_id)).to_dict()

    results = sync_group.expand(group_name=group_names())
    ProduceToTopicOperator(
        task_id="publish_alerts",
        kafka_config_id=kafka_conn_id(),
        topic=ALERTS_TOPIC,
        producer_function="features.sync.alert_messages",
        producer_function_kwargs={"results": results},
    )

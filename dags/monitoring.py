"""``monitoring`` hourly: drift, skew and performance of the production model; retrain when they say so.

``run_checks`` calls ``monitoring.run.run_monitoring`` (drain the prediction log, Evidently drift
against the training reference, PIT skew recompute, AUC-PR once labels arrived; reports under
``<data_dir>/monitoring/reports/<run_id>/``) and returns the small result dict. When a threshold that
warrants retraining was crossed, the branch triggers the ``retraining`` DAG with the alarms as its
``trigger_reason`` and publishes a ``monitoring.alarm`` event on the Kafka ``alerts`` topic; otherwise
both are skipped.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.providers.apache.kafka.operators.produce import ProduceToTopicOperator
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import DAG, Param, task

from dags._features_common import START_DATE, kafka_conn_id
from riskpipe.topics import ALERTS_TOPIC

with DAG(
    dag_id="monitoring",
    description="Hourly: feature/prediction drift, training-serving skew, performance; triggers retraining",
    schedule="@hourly",
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "risk-ml", "retries": 0, "execution_timeout": timedelta(minutes=50)},  # next run in 1 h
    tags=["riskpipe", "monitoring"],
    doc_md=__doc__,
    params={
        "window_end": Param(None, type=["null", "string"], title="Window end (optional)",
                            description="ISO date/time (UTC) the served window ends at; empty = now."),
        "window_hours": Param(None, type=["null", "number"], minimum=0.01, title="Window (hours)",
                              description="Served requests of this many hours; empty = RISKPIPE_MONITORING_WINDOW_H."),
    },
) as dag:

    @task
    def run_checks(params: dict[str, Any] | None = None) -> dict[str, Any]:
        from datetime import datetime

        from airflow.sdk.exceptions import AirflowSkipException

        from monitoring.alerts import retrain_reason
        from monitoring.reference import NothingToMonitor
        from monitoring.run import run_monitoring
        from riskpipe.settings import get_settings

        params = params or {}
        end = datetime.fromisoformat(str(params["window_end"])) if params.get("window_end") else None
        hours = params.get("window_hours")
        try:
            result = run_monitoring(get_settings(), now=end, window=timedelta(hours=float(hours)) if hours else None)
        except NothingToMonitor as exc:  # before the first `riskpipe train`: skipped, not failed, every hour
            raise AirflowSkipException(str(exc)) from exc
        return {**result.to_dict(), "reason": retrain_reason(result.to_dict())}

    @task.branch
    def decide(result: dict[str, Any]) -> list[str]:
        return ["trigger_retraining", "publish_alarm"] if result["should_retrain"] else []

    result = run_checks()
    trigger = TriggerDagRunOperator(
        task_id="trigger_retraining",
        trigger_dag_id="retraining",
        conf={"trigger_reason": "{{ ti.xcom_pull(task_ids='run_checks')['reason'] }}"},
    )
    publish = ProduceToTopicOperator(
        task_id="publish_alarm",
        kafka_config_id=kafka_conn_id(),
        topic=ALERTS_TOPIC,
        producer_function="monitoring.alerts.alarm_messages",
        producer_function_kwargs={"result": result},
    )
    decide(result) >> [trigger, publish]

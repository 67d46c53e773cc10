"""Shared arguments of the feature-store DAGs (batch, backfill, sync): one place, no copies.

Only cheap work belongs here: DAG files are parsed every ~30 s by the dag-processor.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from riskpipe.settings import get_settings

START_DATE = datetime(2024, 1, 1, tzinfo=UTC)
OWNER = "risk-features"
TAGS = ["riskpipe", "features"]

DEFAULT_ARGS = {
    "owner": OWNER,
    "retries": 1,
    "retry_delay": timedelta(minutes=2),
    "execution_timeout": timedelta(hours=2),
}


def writer_slots() -> int:
    """Tasks of one run that may write the offline store at once: DuckDB has a single writer."""
    return 1 if get_settings().offline_backend == "duckdb" else 4


def kafka_conn_id() -> str:
    """The Kafka provider's connection (``AIRFLOW_CONN_RISKPIPE_KAFKA`` in the embedded mode)."""
    return get_settings().airflow_kafka_conn_id

"""Provider connections of the embedded mode are built from Settings (JSON AIRFLOW_CONN_* variables)."""

from __future__ import annotations

import json
from pathlib import Path

from riskpipe.settings import Settings
from riskpipe.stack.airflow import airflow_connections, airflow_env


def test_kafka_connection_points_at_the_broker_and_snowflake_only_when_configured(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, kafka_bootstrap_servers="10.1.2.3:9999")
    conns = airflow_connections(settings)
    assert set(conns) == {"AIRFLOW_CONN_RISKPIPE_KAFKA"}
    kafka = json.loads(conns["AIRFLOW_CONN_RISKPIPE_KAFKA"])
    assert kafka["conn_type"] == "kafka" and kafka["extra"]["bootstrap.servers"] == "10.1.2.3:9999"
    assert airflow_env(settings)["AIRFLOW_CONN_RISKPIPE_KAFKA"] == conns["AIRFLOW_CONN_RISKPIPE_KAFKA"]

    sf = Settings(data_dir=tmp_path, snowflake_account="acme-eu", snowflake_user="svc", snowflake_password="pw1234",
                  snowflake_database="RISK", snowflake_warehouse="WH", airflow_snowflake_conn_id="sf_prod")
    snow = json.loads(airflow_connections(sf)["AIRFLOW_CONN_SF_PROD"])
    assert snow == {"conn_type": "snowflake", "login": "svc", "password": "pw1234", "schema": "RISKPIPE",
                    "extra": {"account": "acme-eu", "database": "RISK", "warehouse": "WH"}}

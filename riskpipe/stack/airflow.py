"""Airflow configuration of the embedded mode, as environment variables.

One function builds it so the supervisor, the DAG tests and `airflow dags test` runs all
see the same Airflow: SQLite metadata under the data dir, the repo's ``dags/`` and
``plugins/``, and every port moved together (changing only the API port leaves workers
calling localhost:8080; the log servers otherwise bind 0.0.0.0:8793/8794).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from riskpipe.settings import REPO_ROOT, Settings

ADMIN_USER = "admin"


def airflow_env(settings: Settings) -> dict[str, str]:
    """AIRFLOW__* variables for a local Airflow bound to the settings' host and ports."""
    home = Path(str(settings.airflow_home))
    base_url = settings.airflow_url
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": str(settings.airflow_parallelism),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base_url}/execution/",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__API__HOST": settings.host,
        "AIRFLOW__API__PORT": str(settings.airflow_api_port),
        "AIRFLOW__API__BASE_URL": base_url,
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(settings.airflow_worker_log_port),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(settings.airflow_trigger_log_port),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        # DAGs and plugins import the riskpipe packages and read the same RISKPIPE_* settings.
        "PYTHONPATH": str(REPO_ROOT),
        # standalone launches its components as `airflow ...` subprocesses found on PATH.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        **settings.to_env(),
        **airflow_connections(settings),
    }


# --- connections of the providers (kept apart from the AIRFLOW__* config above) ------------------------------------


def airflow_connections(settings: Settings) -> dict[str, str]:
    """``AIRFLOW_CONN_*`` variables (JSON form) for the provider hooks the DAGs use.

    Built from Settings so the Kafka provider's operators and SnowflakeHook reach the same
    broker and warehouse as the rest of riskpipe, without anyone creating connections by hand.
    The Snowflake connection only exists when an account is configured.
    """
    env = {
        _conn_var(settings.airflow_kafka_conn_id): json.dumps({
            "conn_type": "kafka",
            "extra": {"bootstrap.servers": settings.bootstrap_servers, "group.id": "riskpipe-airflow",
                      "auto.offset.reset": "earliest"},
        }),
    }
    if settings.snowflake_account:
        extra = {"account": settings.snowflake_account, "database": settings.snowflake_database,
                 "warehouse": settings.snowflake_warehouse, "role": settings.snowflake_role}
        env[_conn_var(settings.airflow_snowflake_conn_id)] = json.dumps({
            "conn_type": "snowflake",
            "login": settings.snowflake_user,
            "password": settings.snowflake_password.get_secret_value() if settings.snowflake_password else None,
            "schema": settings.snowflake_schema,
            "extra": {k: v for k, v in extra.items() if v},
        })
    return env


def _conn_var(conn_id: str) -> str:
    return f"AIRFLOW_CONN_{conn_id.upper()}"


def admin_password(settings: Settings) -> str | None:
    """The password `airflow standalone` generated for the admin user, once it has."""
    path = Path(str(settings.airflow_home)) / "simple_auth_manager_passwords.json.generated"
    try:
        return str(json.loads(path.read_text())[ADMIN_USER])
    except (FileNotFoundError, KeyError, json.JSONDecodeError):
        return None

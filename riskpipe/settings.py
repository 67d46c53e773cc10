"""One settings object for every riskpipe process.

Defaults describe the embedded local mode (everything on 127.0.0.1, state under
``.riskpipe/`` in the repository) so that a fresh clone runs with no configuration.
Production swaps backends through ``RISKPIPE_*`` environment variables; secrets are
``SecretStr`` so they never reach logs or ``riskpipe config`` in clear text.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Effective configuration; every field can be set as ``RISKPIPE_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="RISKPIPE_", extra="ignore")

    # -- where state lives
    data_dir: Path = Field(REPO_ROOT / ".riskpipe", description="Root of all local state (logs, pids, stores).")
    host: str = Field("127.0.0.1", description="Interface every local service binds to.")

    # -- Kafka-protocol broker
    broker_port: int = 9092
    broker_storage: str = Field(
        "memory://tansu/",
        description="Tansu storage engine URL; memory:// keeps nothing across restarts, s3://bucket/ persists.",
    )
    kafka_bootstrap_servers: str | None = Field(
        None, description="External Kafka; when set, `riskpipe up` does not start the embedded broker."
    )
    topic_partitions: int = 4
    kafka_session_timeout_ms: int = 6000

    # -- Redis online store
    redis_port: int = 6379
    redis_url: str | None = Field(None, description="External Redis; when set, no local redis-server is started.")
    redis_password: SecretStr | None = None
    online_key_prefix: str = Field("rp", description="Online-store keys are <prefix>:fv:<group>:v<n>:<key>.")
    online_expiry_grace_s: int = Field(
        3600, ge=0, description="Redis keys expire this long after event time + TTL (reads enforce TTL exactly)."
    )

    # -- offline store
    offline_backend: Literal["duckdb", "snowflake"] = "duckdb"
    duckdb_path: Path | None = Field(None, description="Defaults to <data_dir>/offline.duckdb.")
    lake_uri: str | None = Field(None, description="Event archive root: a directory or s3:// URL.")

    snowflake_account: str | None = None
    snowflake_user: str | None = None
    snowflake_password: SecretStr | None = None
    snowflake_warehouse: str | None = None
    snowflake_database: str | None = None
    snowflake_schema: str = "RISKPIPE"
    snowflake_role: str | None = None

    # -- Airflow (standalone on SQLite in local mode)
    airflow_home: Path | None = Field(None, description="Defaults to <data_dir>/airflow.")
    airflow_api_port: int = 8080
    airflow_worker_log_port: int = 8793
    airflow_trigger_log_port: int = 8794
    airflow_parallelism: int = Field(4, ge=1, le=32)

    # -- serving
    serving_port: int = 3000
    serving_api_key: SecretStr | None = None

    @model_validator(mode="after")
    def _fill_derived_paths(self) -> Settings:
        self.data_dir = self.data_dir.expanduser().resolve()
        if self.duckdb_path is None:
            self.duckdb_path = self.data_dir / "offline.duckdb"
        if self.airflow_home is None:
            self.airflow_home = self.data_dir / "airflow"
        if self.lake_uri is None:
            self.lake_uri = str(self.data_dir / "lake")
        return self

    # -- derived addresses, so no caller formats them by hand
    @property
    def bootstrap_servers(self) -> str:
        return self.kafka_bootstrap_servers or f"{self.host}:{self.broker_port}"

    @property
    def redis_dsn(self) -> str:
        return self.redis_url or f"redis://{self.host}:{self.redis_port}/0"

    @property
    def airflow_url(self) -> str:
        return f"http://{self.host}:{self.airflow_api_port}"

    @property
    def serving_url(self) -> str:
        return f"http://{self.host}:{self.serving_port}"

    @property
    def run_dir(self) -> Path:
        """Pid files and service state of the local supervisor."""
        return self.data_dir / "run"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    def to_env(self) -> dict[str, str]:
        """RISKPIPE_* variables that recreate these settings in a child process (workers, Airflow tasks)."""
        env: dict[str, str] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            env[f"RISKPIPE_{name.upper()}"] = str(value)
        return env

    def masked(self) -> dict[str, Any]:
        """Effective settings with secrets replaced, for printing."""
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                value = "********" if value.get_secret_value() else ""
            elif isinstance(value, Path):
                value = str(value)
            out[name] = value
        for prop in ("bootstrap_servers", "redis_dsn", "airflow_url", "serving_url"):
            out[prop] = getattr(self, prop)
        if self.redis_url and "@" in self.redis_url:  # redis://user:pass@host
            scheme, rest = self.redis_url.split("://", 1)
            out["redis_url"] = out["redis_dsn"] = f"{scheme}://********@{rest.split('@', 1)[1]}"
        return out


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings; tests build their own ``Settings(...)`` instead of mutating this."""
    return Settings()

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

    # -- orchestration of the feature store (Airflow DAGs in dags/, plugins in plugins/)
    airflow_kafka_conn_id: str = Field("riskpipe_kafka", description="Airflow connection of the Kafka provider.")
    airflow_snowflake_conn_id: str = Field("riskpipe_snowflake", description="Airflow connection of SnowflakeHook.")
    offline_lock_wait_s: float = Field(
        120.0, ge=0, description="How long a task waits for DuckDB's single-writer file lock before failing."
    )
    batch_min_rows: int = Field(1, ge=0, description="Rows a scheduled batch run must write, else validation fails.")
    sync_mismatch_alert_rate: float = Field(
        0.01, ge=0, le=1, description="Online/offline mismatch share above which the sync DAG raises an alert."
    )

    # -- training and the model store
    bentoml_home: Path | None = Field(None, description="BentoML home (model store); defaults to <data_dir>/bentoml.")
    training_device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="XGBoost device: auto uses CUDA only when a GPU is really usable, else CPU."
    )
    promotion_margin: float = Field(
        0.01, ge=0.0, le=1.0, description="Test AUC-PR a challenger must gain over the champion to be promoted."
    )
    retraining_min_age_h: float = Field(
        144.0, ge=0.0, description="A *scheduled* retraining run is skipped while the production model is younger "
                                   "than this (hours); manual and monitoring-triggered runs always train.")
    review_capacity_per_day: int = Field(
        20, ge=1, description="Accounts analysts review per day: the k of the precision@k evaluation metric."
    )

    # -- streaming workers (streaming/: feature compute, ingestion, archive)
    topic_prefix: str = Field("", description="Prefix of every topic the streaming workers read and write "
                                              "(lets tests and tenants share a broker).")
    stream_app_id: str = Field("riskpipe-stream", description="Faust app id of the feature worker: its consumer "
                                                              "group, changelog and re-key topic names.")
    stream_groups: str | None = Field(None, description="Comma-separated stream feature groups to compute "
                                                        "(default: every windowed group of the catalog).")
    stream_allowed_lateness_s: float = Field(
        300.0, ge=0, description="Events older than an entity's newest event minus this are late: dead-lettered.")
    stream_batch_size: int = Field(10_000, ge=1, description="Most events per compute batch (live traffic fills "
                                    "less within the batch window; a backlog is worked off in full batches).")
    # 0.05 s (and 0.05 s for ingest_flush_s): at 5k events/s on two cores, 0.1/0.2 s gave freshness p99 1.2-1.4 s,
    # 0.05/0.05 s 0.94 s for 0.1 more cores (benchmarks/bench_stream.py); 0.03 s cost more CPU than it saved latency
    stream_batch_window_s: float = Field(0.05, gt=0, description="Longest wait to fill a compute batch (a floor "
                                                                "of freshness at low rates).")
    # 10 s, not 3: at 5k events/s most of 10k accounts are touched within 3 s, so a shorter interval re-wrote nearly
    # every state each time (measured while states were written whole: compute 0.62-0.66 cores vs 0.53-0.60,
    # freshness p99 0.94-1.31 s vs 0.66-0.88 s on a slow day of the 2-core machine; issue 5's notes)
    stream_checkpoint_s: float = Field(10.0, gt=0, description="How long a changed entity state waits before it is "
                                       "written to the changelog (an entity touched by several batches meanwhile is "
                                       "written once), and how often the input behind written states is released "
                                       "(offsets committed): a crash re-reads about twice this much.")
    stream_segment_events: int = Field(256, ge=2, description="Events per sealed segment of a long entity state in "
                                       "the changelog: a checkpoint writes a state's newest events and the segments an "
                                       "event changed, not the whole state (larger: fewer records, more re-written).")
    # Tansu answers a fetch only when its max wait is over, even when records arrive earlier: every hop of the
    # stream pipeline waited up to 0.5 s (librdkafka) or 1.5 s (Faust's hard-coded aiokafka setting)
    stream_fetch_wait_ms: int = Field(50, ge=1, description="Max wait of the stream workers' fetch requests.")
    # a replay (warm-up, history through Kafka) holds days of event time per partition: stage 1 releases events in
    # time order across partitions and waits this long at most for a partition that has records not yet fetched
    stream_align_idle_s: float = Field(0.25, ge=0, description="Longest wait for a lagging events partition before "
                                                                "the compute worker processes the others.")
    ingest_group_id: str = Field("riskpipe-ingest", description="Consumer group of the ingestion worker.")
    # a features.<group> message packs up to 500 updates (streaming.updates), so 200 messages <= 100k rows
    ingest_batch_size: int = Field(200, ge=1, description="Feature-update messages per ingestion micro-batch.")
    ingest_flush_s: float = Field(0.05, gt=0, description="Longest wait before consumed updates go to Redis "
                                                         "(the online freshness budget).")
    # the offline store costs ~0.1-0.3 s per write whatever its size: written less often than Redis
    ingest_offline_flush_s: float = Field(2.0, gt=0, description="Longest wait before updates already in Redis "
                                                                 "are appended offline (offsets commit after).")
    archive_group_id: str = Field("riskpipe-archive", description="Consumer group of the event archiver.")
    archive_flush_s: float = Field(30.0, gt=0, description="Longest wait before buffered events go to the lake.")
    archive_batch_rows: int = Field(50_000, ge=1, description="Buffered events that force a lake write.")
    archive_compact_min_files: int = Field(
        8, ge=2, description="A closed hour partition with at least this many files is compacted into one.")
    worker_status_interval_s: float = Field(2.0, gt=0, description="How often workers refresh their status file.")

    # -- serving
    serving_port: int = 3000
    serving_api_key: SecretStr | None = None
    serving_device: Literal["auto", "cpu", "cuda"] = Field(
        "cpu", description="XGBoost scoring device: single-row scoring is fastest on the CPU; auto/cuda use a GPU.")
    serving_redis_timeout_ms: int = Field(
        50, ge=1, description="Socket timeout of the serving Redis client: past it a request scores degraded.")
    serving_redis_retry_s: float = Field(
        0.5, ge=0, description="After a Redis failure, requests skip Redis this long (no timeout paid per request).")
    serving_reload_interval_s: float = Field(
        3.0, gt=0, description="How often serving polls the production pointer for a newly promoted model.")
    serving_max_batch: int = Field(1000, ge=1, description="Most requests one /score/batch call may carry.")
    serving_max_body_bytes: int = Field(2_000_000, ge=1024, description="Largest request body accepted (413 past it).")
    serving_log_queue: int = Field(
        20_000, ge=1, description="Prediction-log records buffered for Kafka; past it records are dropped and counted.")
    serving_reason_codes: int = Field(3, ge=0, le=20, description="Top feature contributions returned per score.")
    # BentoML worker processes and its per-request extras: each costs CPU on every request (measured in
    # benchmarks/bench_serving.py), so the access log and OpenTelemetry spans are off unless asked for.
    serving_workers: int = Field(1, ge=1, description="BentoML worker processes (one per core the service owns).")
    serving_access_log: bool = Field(False, description="BentoML's per-request access log line.")
    serving_tracing: bool = Field(
        False, description="OpenTelemetry spans for the scoring routes (export via BENTOML_CONFIG tracing).")
    serving_alerts_reload: bool = Field(
        True, description="Reload the model on `model.promoted` events from the alerts topic (polling stays on).")

    # -- the main job `riskpipe up` runs (riskpipe/pipeline.py): sized so the first `make up` takes minutes on 2 cores
    pipeline_accounts: int = Field(1000, ge=10, description="Simulated accounts (history and live traffic).")
    pipeline_history_days: float = Field(7.0, gt=0, le=365, description="Days of simulated history to train on.")
    pipeline_seed: int = Field(7, ge=0, description="Simulation seed: history and live traffic share the population.")
    traffic_rate: float = Field(
        20.0, gt=0, description="Events/s of the live traffic service; each transaction is scored like a gateway.")

    # -- service metrics (monitoring/exporter.py, `riskpipe monitor`): Prometheus scrapes the exporter
    exporter_port: int = Field(9464, description="Port of the metrics exporter's /metrics (lag, workers, sync).")
    exporter_offline_wait_s: float = Field(
        1.0, ge=0, description="How long the exporter waits for DuckDB's lock before serving the last sync figures.")
    exporter_sync_refresh_s: float = Field(
        30.0, ge=0, description="Sync figures are re-read at most this often (the sync DAG runs every 10 minutes).")
    lag_extra_groups: str | None = Field(
        None, description="Comma-separated consumer groups to report lag for besides the pipeline's own workers.")

    # -- data monitoring (monitoring/run.py, hourly `monitoring` DAG): drift, skew, performance, retraining trigger
    monitoring_group_id: str = Field("riskpipe-monitoring", description="Consumer group draining predictions.log.")
    monitoring_window_h: float = Field(24.0, gt=0, description="Served requests of this many hours form a run.")
    monitoring_min_rows: int = Field(
        200, ge=1, description="Fewer served rows in the window: drift is reported but raises no alarm.")
    monitoring_reference_rows: int = Field(
        5000, ge=100, description="Rows sampled from the production model's training set as the drift reference.")
    monitoring_drift_share: float = Field(
        0.3, gt=0, le=1, description="Share of drifted model features at or above which feature drift alarms.")
    monitoring_missing_increase: float = Field(
        0.2, ge=0, le=1, description="Data quality alarm: a feature's served null share exceeds the reference's "
                                     "by more than this.")
    monitoring_skew_sample: int = Field(500, ge=1, description="Logged requests recomputed offline by the skew check.")
    monitoring_skew_rate: float = Field(
        0.05, ge=0, le=1, description="A feature whose served/offline mismatch rate exceeds this is skewed.")
    monitoring_min_positives: int = Field(
        10, ge=1, description="Labelled frauds needed in the window before AUC-PR is judged.")
    monitoring_auc_pr_drop: float = Field(
        0.5, ge=0, le=1, description="Performance alarm: AUC-PR below (1 - this) x the model's test AUC-PR.")
    monitoring_keep_reports: int = Field(
        168, ge=1, description="Newest report folders kept (drift.html is ~5 MB); older ones are deleted.")

    @model_validator(mode="after")
    def _fill_derived_paths(self) -> Settings:
        self.data_dir = self.data_dir.expanduser().resolve()
        if self.duckdb_path is None:
            self.duckdb_path = self.data_dir / "offline.duckdb"
        if self.airflow_home is None:
            self.airflow_home = self.data_dir / "airflow"
        if self.lake_uri is None:
            self.lake_uri = str(self.data_dir / "lake")
        if self.bentoml_home is None:
            self.bentoml_home = self.data_dir / "bentoml"
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

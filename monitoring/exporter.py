"""The pipeline's Prometheus exporter: lag, worker progress, sync results and model monitoring on one /metrics.

The scoring service exports its own metrics (serving/metrics.py); everything else the dashboards
need lives in places Prometheus cannot scrape (the broker's offsets, worker status files, the
offline ``sync_runs`` table, the latest monitoring run), so this small process reads them on each
scrape (monitoring/figures.py) and exposes them. Each source fails on its own: an unreachable
broker or a locked DuckDB file turns ``riskpipe_exporter_source_up{source}`` to 0 and, for sync,
keeps serving the last values read, instead of failing the scrape.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from functools import partial
from typing import Any

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from monitoring import figures
from monitoring.lag import LagReader, as_rows, pipeline_groups
from riskpipe.gpu import gpu_available, gpu_readings
from riskpipe.settings import Settings

log = logging.getLogger(__name__)


class _Families:
    """Every metric family the exporter serves, empty; ``collect`` fills a fresh set per scrape."""

    def __init__(self) -> None:
        g, c = GaugeMetricFamily, CounterMetricFamily
        self.source_up = g("riskpipe_exporter_source_up", "1 when the source answered this scrape", labels=["source"])
        self.lag = g("riskpipe_consumer_lag", "Messages behind the high-watermark, summed over partitions "
                     "(Tansu: can read low by one producer batch)", labels=["group", "consumer", "topic"])
        per_worker, per_group = partial(g, labels=["worker"]), partial(g, labels=["group"])
        self.worker_up = per_worker("riskpipe_worker_up", "1 when the worker reported running recently")
        self.worker_events = c("riskpipe_worker_events", "Worker counters from its status file (rate = throughput)",
                               labels=["worker", "counter"])
        self.worker_last_event = per_worker("riskpipe_worker_last_event_timestamp_seconds",
                                            "Event time of the newest event the worker handled")
        self.worker_freshness = per_worker("riskpipe_worker_freshness_seconds",
                                           "Now minus the newest event time handled")
        self.worker_status_age = per_worker("riskpipe_worker_status_age_seconds",
                                            "Age of the worker's last status report")
        self.sync_mismatch = per_group("riskpipe_sync_mismatch_rate", "Online/offline mismatch share of the last sync")
        self.sync_freshness = per_group("riskpipe_sync_freshness_seconds", "Feature freshness at the last sync")
        self.sync_last_run = per_group("riskpipe_sync_last_run_timestamp_seconds", "When the group was last synced")
        self.sync_missing = per_group("riskpipe_sync_missing_online", "Entities missing online at the last sync")
        self.monitoring_alarms = g("riskpipe_monitoring_alarms", "Alarms of the latest monitoring run",
                                   labels=["check"])
        self.monitoring_retrain = g("riskpipe_monitoring_should_retrain", "1 when the latest run asked for retraining")
        self.monitoring_figures = {
            name: g(f"riskpipe_monitoring_{name}", f"Latest monitoring run: {name.replace('_', ' ')}")
            for name in figures.SUMMARY_FIGURES
        }
        self.gpu_util = g("riskpipe_gpu_utilization_percent", "GPU utilization (NVML; absent without a GPU)",
                          labels=["gpu"])
        self.gpu_memory = g("riskpipe_gpu_memory_used_bytes", "GPU memory used (NVML)", labels=["gpu"])

    def all(self) -> list[Metric]:
        return [v for v in vars(self).values() if isinstance(v, Metric)] + list(self.monitoring_figures.values())


class PipelineCollector:
    """A prometheus_client custom collector: reads the sources at scrape time (one scrape at a time)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._lag_reader: LagReader | None = None
        self._sync_rows: list[dict[str, Any]] = []
        self._sync_read_at = float("-inf")
        self._sync_up = False

    def describe(self) -> list[Metric]:
        """Names only (prometheus_client calls this at registration instead of scraping the sources)."""
        return _Families().all()

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            fam = _Families()
            for source, read in (("broker", self._collect_lag), ("workers", self._collect_workers),
                                 ("offline", self._collect_sync), ("monitoring", self._collect_monitoring),
                                 ("gpu", self._collect_gpu)):
                try:
                    up = read(fam)
                except Exception as exc:  # one broken source never fails the scrape
                    log.warning("metrics source failed; its figures are missing from this scrape (`riskpipe status`)",
                                extra={"source": source, "error": f"{type(exc).__name__}: {exc}"})
                    up = False
                if up is not None:
                    fam.source_up.add_metric([source], 1.0 if up else 0.0)
            yield from fam.all()

    def _collect_lag(self, fam: _Families) -> bool:
        groups = pipeline_groups(self.settings)
        if self._lag_reader is None:
            self._lag_reader = LagReader(self.settings.bootstrap_servers)
        for row in as_rows(self._lag_reader.read(groups), groups):
            fam.lag.add_metric([row["group"], row["consumer"], row["topic"]], row["lag"])
        return True

    def _collect_workers(self, fam: _Families) -> bool:
        for row in figures.worker_figures(self.settings):
            worker = row["worker"]
            fam.worker_up.add_metric([worker], 1.0 if row["up"] else 0.0)
            for counter, value in sorted(row["counters"].items()):
                fam.worker_events.add_metric([worker, counter], float(value))
            if row["last_event_us"] is not None:
                fam.worker_last_event.add_metric([worker], row["last_event_us"] / 1e6)
                fam.worker_freshness.add_metric([worker], row["freshness_s"])
            if row["status_age_s"] is not None:
                fam.worker_status_age.add_metric([worker], row["status_age_s"])
        return True

    def _collect_sync(self, fam: _Families) -> bool:
        """Re-read ``sync_runs`` at most every ``exporter_sync_refresh_s``; keep the last rows when the
        offline store is locked (ingestion or an Airflow task writing) or unreachable."""
        now = time.monotonic()
        if now - self._sync_read_at >= self.settings.exporter_sync_refresh_s:
            self._sync_read_at = now
            try:
                self._sync_rows = figures.read_sync(self.settings, self.settings.exporter_offline_wait_s)
                self._sync_up = True
            except Exception as exc:
                self._sync_up = False
                log.info("offline store not readable now; serving the last sync figures",
                         extra={"error": str(exc), "retry_in_s": self.settings.exporter_sync_refresh_s})
        for row in self._sync_rows:
            group = [row["group_name"]]
            fam.sync_mismatch.add_metric(group, float(row["mismatch_rate"]))
            if row["freshness_s"] is not None:
                fam.sync_freshness.add_metric(group, float(row["freshness_s"]))
            fam.sync_missing.add_metric(group, float(row["missing_online"]))
            fam.sync_last_run.add_metric(group, datetime.fromisoformat(row["run_at"]).timestamp())
        return self._sync_up

    def _collect_monitoring(self, fam: _Families) -> bool:
        run = figures.read_monitoring(self.settings).get("run")
        if run is None:
            return True  # no run yet is a valid state, not a failure
        by_check = Counter(a.get("check", "unknown") if isinstance(a, dict) else "unknown" for a in run["alarms"])
        for check, n in sorted(by_check.items()):
            fam.monitoring_alarms.add_metric([check], float(n))
        fam.monitoring_retrain.add_metric([], 1.0 if run["should_retrain"] else 0.0)
        for name, family in fam.monitoring_figures.items():
            if run.get(name) is not None:
                family.add_metric([], run[name])
        return True

    def _collect_gpu(self, fam: _Families) -> bool | None:
        """NVML when a driver and GPU exist; None (no ``source_up`` sample) on machines without one."""
        if not gpu_available():
            return None
        for reading in gpu_readings():
            fam.gpu_util.add_metric([str(reading.index)], reading.utilization_percent)
            fam.gpu_memory.add_metric([str(reading.index)], reading.memory_used_bytes)
        return True


def build_registry(settings: Settings) -> CollectorRegistry:
    """The exporter's registry: pipeline figures plus its own process CPU/memory."""
    registry = CollectorRegistry()
    registry.register(PipelineCollector(settings))
    ProcessCollector(registry=registry)
    return registry


def serve(settings: Settings, host: str | None = None, port: int | None = None) -> tuple[Any, threading.Thread]:
    """Start the HTTP server in a background thread; returns (server, thread) so callers can shut it down."""
    from prometheus_client import start_http_server

    return start_http_server(port or settings.exporter_port, addr=host or settings.host,
                             registry=build_registry(settings))


def run_exporter(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    """Serve until SIGTERM/SIGINT (the supervisor stops it with SIGTERM)."""
    server, thread = serve(settings, host, port)
    log.info("metrics exporter listening", extra={"url": f"http://{host or settings.host}:"
                                                         f"{port or settings.exporter_port}/metrics"})
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    server.shutdown()
    thread.join(timeout=5)

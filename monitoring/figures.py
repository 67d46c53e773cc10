"""The current figures of the running pipeline, gathered from where each one already lives.

Nothing here keeps state of its own: serving's numbers come from its Prometheus ``/metrics``,
worker progress from the status files the workers write (streaming/status.py), lag from the
broker (monitoring/lag.py), sync results from the offline ``sync_runs`` table and model
monitoring from the latest monitoring run (monitoring/run.py). `riskpipe monitor` prints them and
the exporter (monitoring/exporter.py) serves the same sources to Prometheus, so the terminal and
Grafana never disagree about what a figure means.

Every source can be missing (serving down, no sync yet, no monitoring run yet): a source that is
unavailable says why instead of failing the whole report.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from riskpipe.settings import Settings

NO_MONITORING_RUN = ("no monitoring run yet; run `riskpipe monitor run` or wait for the hourly `monitoring` DAG")

# -- serving: Prometheus text from serving's /metrics -----------------------------------------------------------

REQUESTS = "riskpipe_serving_requests"
LATENCY = "riskpipe_serving_request_seconds"
DEGRADED = "riskpipe_serving_degraded"
MISSING = "riskpipe_serving_missing_features"


def parse_samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    """(sample name, labels, value) of every sample in a Prometheus text exposition."""
    from prometheus_client.parser import text_string_to_metric_families

    return [(s.name, dict(s.labels), float(s.value))
            for family in text_string_to_metric_families(text) for s in family.samples]


def histogram_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float | None:
    """Quantile from cumulative (upper bound, count) buckets, interpolated inside a bucket like PromQL's
    ``histogram_quantile``; None when the histogram is empty. The +Inf bucket answers its lower bound."""
    ordered = sorted(buckets)
    if not ordered or ordered[-1][1] <= 0:
        return None
    rank = q * ordered[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in ordered:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return lower_bound


def _totals(samples: Iterable[tuple[str, dict[str, str], float]]) -> dict[str, Any]:
    """Per-endpoint request counts and latency buckets, plus the degraded/missing counters."""
    requests: dict[str, float] = {}
    buckets: dict[str, dict[float, float]] = {}
    counters = {DEGRADED: 0.0, MISSING: 0.0}
    for name, labels, value in samples:
        if name == f"{REQUESTS}_total":
            endpoint = labels.get("endpoint", "")
            requests[endpoint] = requests.get(endpoint, 0.0) + value
        elif name == f"{LATENCY}_bucket":
            per = buckets.setdefault(labels.get("endpoint", ""), {})
            le = float(labels["le"])
            per[le] = per.get(le, 0.0) + value
        elif name.removesuffix("_total") in counters:
            counters[name.removesuffix("_total")] += value
    return {"requests": requests, "buckets": buckets, **counters}


def serving_figures(before: list[tuple[str, dict[str, str], float]], after: list[tuple[str, dict[str, str], float]],
                    interval_s: float) -> dict[str, Any]:
    """QPS and latency quantiles over the interval between two scrapes, per endpoint.

    Latency uses the buckets' increase over the interval (what Grafana's ``rate`` shows); with no
    request in the interval it falls back to everything since the service started, and says so.
    """
    a, b = _totals(before), _totals(after)
    endpoints = []
    for endpoint in sorted(set(b["requests"]) | set(b["buckets"])):
        total = b["requests"].get(endpoint, 0.0)
        delta = total - a["requests"].get(endpoint, 0.0)
        now_b, then_b = b["buckets"].get(endpoint, {}), a["buckets"].get(endpoint, {})
        window = {le: c - then_b.get(le, 0.0) for le, c in now_b.items()}
        since_start = not any(window.values())
        used = now_b if since_start else window
        p50, p99 = histogram_quantile(0.5, used.items()), histogram_quantile(0.99, used.items())
        endpoints.append({
            "endpoint": endpoint, "requests_total": int(total),
            "qps": delta / interval_s if interval_s > 0 else None,
            "p50_ms": None if p50 is None else p50 * 1000, "p99_ms": None if p99 is None else p99 * 1000,
            "latency_window": "since start" if since_start else f"last {interval_s:g}s",
        })
    return {"endpoints": endpoints, "degraded_total": int(b[DEGRADED]), "missing_features_total": int(b[MISSING])}


def scrape(url: str, timeout_s: float = 2.0) -> list[tuple[str, dict[str, str], float]]:
    import httpx

    response = httpx.get(url, timeout=timeout_s)
    response.raise_for_status()
    return parse_samples(response.text)


def read_serving(settings: Settings, interval_s: float) -> dict[str, Any]:
    """Two scrapes of serving's /metrics ``interval_s`` apart; ``{"up": False, ...}`` when it does not answer."""
    import httpx

    url = f"{settings.serving_url}/metrics"
    try:
        before = scrape(url)
        time.sleep(interval_s)
        after = scrape(url)
    except (httpx.HTTPError, ValueError) as exc:
        return {"up": False, "url": url, "error": f"{type(exc).__name__}: {exc}",
                "hint": "start it with `riskpipe up serving`"}
    return {"up": True, "url": url, **serving_figures(before, after, interval_s)}


# -- stream workers: their status files ----------------------------------------------------------------------------

def worker_figures(settings: Settings, now: float | None = None) -> list[dict[str, Any]]:
    """State, counters, newest event time and freshness of each stream worker (None values when unknown)."""
    from monitoring.lag import STREAM_WORKERS
    from streaming.status import is_fresh, read_status

    now = now or time.time()
    rows = []
    for worker in STREAM_WORKERS:
        status = read_status(settings, worker)
        if status is None:
            rows.append({"worker": worker, "state": "no status", "up": False, "counters": {}, "last_event_time": None,
                         "last_event_us": None, "freshness_s": None, "status_age_s": None})
            continue
        last_us = status.get("last_event_us")
        rows.append({
            "worker": worker, "state": status.get("state"), "up": is_fresh(settings, worker, now=now),
            "counters": dict(status.get("counters", {})),
            "last_event_time": None if last_us is None else datetime.fromtimestamp(last_us / 1e6, UTC).isoformat(),
            "last_event_us": last_us,
            "freshness_s": None if last_us is None else max(0.0, now - last_us / 1e6),
            "status_age_s": max(0.0, now - float(status.get("updated_at", 0))),
        })
    return rows


# -- lag -----------------------------------------------------------------------------------------------------------

def read_lag_rows(settings: Settings) -> dict[str, Any]:
    from monitoring.lag import as_rows, pipeline_groups, read_lag

    groups = pipeline_groups(settings)
    try:
        return {"up": True, "rows": as_rows(read_lag(settings, groups), groups)}
    except Exception as exc:  # broker unreachable: confluent-kafka raises KafkaException / timeouts
        return {"up": False, "rows": [], "error": f"{type(exc).__name__}: {exc}",
                "hint": f"is the broker at {settings.bootstrap_servers} up? (`riskpipe status`)"}


# -- sync results: the offline sync_runs table ----------------------------------------------------------------------

SYNC_COLUMNS = ("group_name", "run_at", "mismatch_rate", "freshness_s", "missing_online", "stale_online",
                "value_mismatch", "repaired_offline")


def read_sync(settings: Settings, wait_s: float) -> list[dict[str, Any]]:
    """Newest ``sync_runs`` row per group. Opens the offline store only for the query (DuckDB's single-writer
    lock is shared with ingestion and Airflow tasks); raises UsageError when the lock stays taken ``wait_s``."""
    from features.offline_access import offline_session
    from features.sync import SYNC_RUNS_TABLE

    if settings.offline_backend == "duckdb" and not settings.duckdb_path.exists():  # type: ignore[union-attr]
        return []  # never create the store from a read-only view
    with offline_session(settings, wait_s=wait_s) as store:
        if not store.table_exists(SYNC_RUNS_TABLE):
            return []
        rows = store.query(f"SELECT {', '.join(SYNC_COLUMNS)} FROM {SYNC_RUNS_TABLE} "
                           "QUALIFY row_number() OVER (PARTITION BY group_name ORDER BY run_at DESC) = 1 "
                           "ORDER BY group_name").to_pylist()
    for row in rows:
        if isinstance(row["run_at"], datetime):
            row["run_at"] = row["run_at"].replace(tzinfo=UTC).isoformat()
    return rows


# -- model monitoring: the latest run of monitoring/run.py ---------------------------------------------------------

# (figure, where it sits in the run summary): read by path so a renamed summary key shows as missing, not as zero
SUMMARY_FIGURES: dict[str, tuple[str, ...]] = {
    "drift_share": ("drift", "share_drifted"),
    "prediction_drift": ("drift", "prediction_drift_score"),
    "skew_max_mismatch_rate": ("skew", "max_mismatch_rate"),
    "auc_pr": ("performance", "auc_pr"),
}


def _dig(summary: Mapping[str, Any], path: tuple[str, ...]) -> float | None:
    node: Any = summary
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return float(node) if isinstance(node, int | float) and not isinstance(node, bool) else None


def summarize_run(latest: Mapping[str, Any], summary: Mapping[str, Any] | None) -> dict[str, Any]:
    """The figures of one monitoring run: alarms, the retrain decision, report paths and headline numbers."""
    alarms = list(latest.get("alarms") or [])
    out: dict[str, Any] = {
        "run_id": latest.get("run_id"), "report_dir": str(latest.get("report_dir")),
        "started_at": latest.get("started_at"), "should_retrain": bool(latest.get("should_retrain")),
        "alarms_count": len(alarms), "alarms": alarms,
    }
    for name, path in SUMMARY_FIGURES.items():
        out[name] = _dig(summary or {}, path)
    return out


def read_monitoring(settings: Settings) -> dict[str, Any]:
    """The latest monitoring run, or ``{"run": None, "message": ...}`` before the first one."""
    from monitoring.run import latest_result  # lazily: it pulls in the offline store (pandas)

    latest = latest_result(settings)
    if not latest:
        return {"run": None, "message": NO_MONITORING_RUN}
    summary = latest.get("summary")
    if summary is None and latest.get("report_dir"):
        try:
            summary = json.loads((Path(latest["report_dir"]) / "summary.json").read_text())
        except (OSError, ValueError):
            summary = None
    return {"run": summarize_run(latest, summary)}


# -- everything ----------------------------------------------------------------------------------------------------

def collect(settings: Settings, interval_s: float = 1.0) -> dict[str, Any]:
    """Every figure `riskpipe monitor` shows, JSON-friendly."""
    try:
        sync: dict[str, Any] = {"up": True, "groups": read_sync(settings, settings.exporter_offline_wait_s)}
    except Exception as exc:  # lock held past the wait, Snowflake unreachable: say so, show the rest
        sync = {"up": False, "groups": [], "error": str(exc)}
    return {
        "at": datetime.now(UTC).isoformat(),
        "serving": read_serving(settings, interval_s),
        "lag": read_lag_rows(settings),
        "workers": worker_figures(settings),
        "sync": sync,
        "monitoring": read_monitoring(settings),
    }

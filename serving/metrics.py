"""Prometheus metrics of the scoring service, served by BentoML's ``/metrics``.

``prometheus_client`` is imported lazily: BentoML workers set ``PROMETHEUS_MULTIPROC_DIR`` after
the service module is imported, and metrics created before that would never reach ``/metrics``.
Process CPU / memory (and GPU utilization when NVML finds a GPU) are sampled by a small thread,
because the multiprocess collector does not export per-process collectors.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from riskpipe.gpu import gpu_readings

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class ServingMetrics:
    def __init__(self, registry: Any = None):
        import prometheus_client as pc

        kw: dict[str, Any] = {"registry": registry} if registry is not None else {}
        self.requests = pc.Counter("riskpipe_serving_requests", "Scoring requests by endpoint and HTTP status",
                                   ["endpoint", "status"], **kw)
        self.latency = pc.Histogram("riskpipe_serving_request_seconds", "Scoring request latency",
                                    ["endpoint"], buckets=LATENCY_BUCKETS, **kw)
        self.feature_fetch = pc.Histogram("riskpipe_serving_feature_fetch_seconds", "Online feature fetch latency",
                                          buckets=LATENCY_BUCKETS, **kw)
        self.model_latency = pc.Histogram("riskpipe_serving_model_seconds", "Model scoring latency (with reasons)",
                                          buckets=LATENCY_BUCKETS, **kw)
        self.scored = pc.Counter("riskpipe_serving_scored", "Scored transactions by decision", ["decision"], **kw)
        self.degraded = pc.Counter("riskpipe_serving_degraded", "Transactions scored without the online store", **kw)
        self.missing = pc.Counter("riskpipe_serving_missing_features",
                                  "Model features served as missing (defaults)", **kw)
        self.log_dropped = pc.Counter("riskpipe_serving_prediction_log_dropped",
                                      "Prediction-log records dropped (buffer full)", **kw)
        self.cpu = pc.Gauge("riskpipe_serving_process_cpu_percent", "Process CPU percent",
                            multiprocess_mode="livesum", **kw)
        self.memory = pc.Gauge("riskpipe_serving_process_rss_bytes", "Process resident memory",
                               multiprocess_mode="livesum", **kw)
        self.gpu = pc.Gauge("riskpipe_serving_gpu_utilization_percent", "GPU utilization (when a GPU exists)",
                            ["gpu"], multiprocess_mode="max", **kw)
        self._stop = threading.Event()

    def sample_resources(self) -> None:
        import psutil

        proc = psutil.Process()
        self.cpu.set(proc.cpu_percent(None))
        self.memory.set(proc.memory_info().rss)
        for reading in gpu_readings():  # none without a GPU: the gauge stays absent
            self.gpu.labels(gpu=str(reading.index)).set(reading.utilization_percent)

    def start_sampler(self, interval_s: float = 5.0) -> None:
        def loop() -> None:
            while True:
                try:
                    self.sample_resources()
                except Exception as exc:  # a sampling hiccup must never take the service down
                    log.debug("resource sampling failed", extra={"error": str(exc)})
                if self._stop.wait(interval_s):
                    return

        threading.Thread(target=loop, name="metrics-sampler", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

"""The BentoML service: a thin shell that owns one ``ServingRuntime`` and mounts the HTTP app.

``bentoml serve serving.service:FraudScorer`` (BENTOML_HOME and RISKPIPE_* from the environment).
BentoML adds /healthz, /livez, /readyz and /metrics; the service is healthy without a model
(/score answers 503 until `riskpipe train` promotes one, then the poller loads it).
"""

from __future__ import annotations

import gc

import bentoml

from riskpipe.settings import get_settings
from serving.http_app import create_app
from serving.runtime import ServingRuntime

_runtime: ServingRuntime | None = None


def _current() -> ServingRuntime:
    if _runtime is None:
        raise RuntimeError("the scoring runtime is not initialised yet")
    return _runtime


app = create_app(_current)
_settings = get_settings()
# Every path OpenTelemetry should skip: all of them unless tracing is asked for (the middleware
# costs CPU on every request even with no exporter configured).
_UNTRACED = [] if _settings.serving_tracing else ["/"]


@bentoml.service(name="fraud_scorer", traffic={"timeout": 10}, workers=_settings.serving_workers,
                 logging={"access": {"enabled": _settings.serving_access_log}},
                 tracing={"excluded_urls": _UNTRACED})
@bentoml.asgi_app(app, path="/")
class FraudScorer:
    """Fraud scoring: POST /score, POST /score/batch, GET /model; OpenAPI at /docs."""

    def __init__(self) -> None:
        global _runtime
        _runtime = ServingRuntime.from_settings(_settings)
        _runtime.start()
        # The worker holds ~200k long-lived objects (BentoML, FastAPI, pandas, xgboost): a full GC pass
        # over them took ~130 ms, a stall that landed in the p99 under load. Freezing moves everything
        # alive after start-up out of the collector's sight; request garbage is still collected.
        gc.freeze()

    @bentoml.on_shutdown
    def shutdown(self) -> None:
        if _runtime is not None:
            _runtime.close()

"""The BentoML service: a thin shell that owns one ``ServingRuntime`` and mounts the HTTP app.

``bentoml serve serving.service:FraudScorer`` (BENTOML_HOME and RISKPIPE_* from the environment).
BentoML adds /healthz, /livez, /readyz and /metrics; the service is healthy without a model
(/score answers 503 until `riskpipe train` promotes one, then the poller loads it).
"""

from __future__ import annotations

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


@bentoml.service(name="fraud_scorer", traffic={"timeout": 10}, workers=1)
@bentoml.asgi_app(app, path="/")
class FraudScorer:
    """Fraud scoring: POST /score, POST /score/batch, GET /model; OpenAPI at /docs."""

    def __init__(self) -> None:
        global _runtime
        _runtime = ServingRuntime.from_settings(get_settings())
        _runtime.start()

    @bentoml.on_shutdown
    def shutdown(self) -> None:
        if _runtime is not None:
            _runtime.close()

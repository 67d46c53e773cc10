"""The HTTP surface (FastAPI, mounted into the BentoML service): validation, auth, size limits, errors.

Kept apart from BentoML so tests can drive it in-process. Every failure a client can cause maps to
a 4xx with a message naming the field; 503 means "not ready" (no production model yet).

Latency notes (measured with py-spy on the BentoML worker, see benchmarks/bench_serving.py):
``/score`` is an ``async`` endpoint because a sync one is dispatched to a thread pool per request,
which cost more CPU than the scoring itself; the work is ~1 ms of CPU and its only wait is one
Redis round trip under a short socket timeout, so it runs on the event loop. ``/score/batch`` stays
sync (threaded): a big batch must not stall the loop. The response is serialized once by pydantic
(FastAPI would otherwise validate the returned model again), and the body limit and request metrics
are one pure ASGI middleware, not Starlette's ``BaseHTTPMiddleware`` (an extra task per request).
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from serving.metrics import ServingMetrics
from serving.model_holder import NoProductionModel
from serving.runtime import ServingRuntime
from serving.schemas import BatchScoreRequest, BatchScoreResponse, ScoreRequest, ScoreResponse

RuntimeProvider = Callable[[], ServingRuntime]


class _BodyTooLarge(Exception):
    """Raised while reading a body past the size limit; answered as 413."""


class RequestGuard:
    """ASGI middleware: refuse bodies over ``limit`` bytes (413) by Content-Length or by counting chunks,
    and count /score* requests by status with their latency."""

    def __init__(self, app: Any, limit: Callable[[], int], metrics: Callable[[], ServingMetrics]):
        self.app = app
        self.limit = limit
        self.metrics = metrics

    async def __call__(self, scope: dict, receive: Callable[[], Awaitable[dict]], send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        path: str = scope["path"]
        status = 500

        async def sent(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._limited(scope, receive, sent)
        finally:
            if path.startswith("/score"):
                metrics = self.metrics()
                metrics.requests.labels(endpoint=path, status=str(status)).inc()
                metrics.latency.labels(endpoint=path).observe(time.perf_counter() - started)

    async def _limited(self, scope: dict, receive: Callable[[], Awaitable[dict]], send: Callable) -> None:
        limit = self.limit()
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await _too_large(limit)(scope, receive, send)
            return
        seen = 0

        async def counted() -> dict:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _BodyTooLarge()
            return message

        try:
            await self.app(scope, counted, send)
        except _BodyTooLarge:
            await _too_large(limit)(scope, receive, send)


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse({"error": f"request body larger than {limit} bytes (RISKPIPE_SERVING_MAX_BODY_BYTES)"},
                        status_code=413)


def _field_errors(exc: RequestValidationError) -> list[str]:
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        out.append(f"{'.'.join(loc) or 'body'}: {err.get('msg', 'invalid')}")
    return out


def create_app(runtime: RuntimeProvider) -> FastAPI:
    app = FastAPI(title="riskpipe fraud scoring", version="1",
                  description="Scores transactions with the production fraud model and the online feature store.")
    app.add_middleware(RequestGuard, limit=lambda: runtime().settings.serving_max_body_bytes,
                       metrics=lambda: runtime().metrics)

    async def api_key(x_api_key: str | None = Header(None, description="Needed if an API key is set")) -> None:
        expected = runtime().settings.serving_api_key
        if expected is None or not expected.get_secret_value():
            return
        if x_api_key is None or not hmac.compare_digest(x_api_key.encode(), expected.get_secret_value().encode()):
            raise _Unauthorized()

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": "invalid request", "detail": _field_errors(exc)}, status_code=422)

    @app.exception_handler(NoProductionModel)
    async def _no_model(_request: Request, exc: NoProductionModel) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=503)

    @app.exception_handler(_Unauthorized)
    async def _unauthorized(_request: Request, _exc: Exception) -> JSONResponse:
        return JSONResponse({"error": "missing or wrong x-api-key header"}, status_code=401)

    @app.post("/score", response_model=ScoreResponse, dependencies=[Depends(api_key)])
    async def score(request: ScoreRequest) -> Response:
        """Score one transaction."""
        return _json(runtime().scorer.score(request))

    @app.post("/score/batch", response_model=BatchScoreResponse, dependencies=[Depends(api_key)])
    def score_batch(batch: BatchScoreRequest) -> Any:
        """Score many transactions with one model and one online-store round trip per entity-key shape."""
        limit = runtime().settings.serving_max_batch
        if len(batch.requests) > limit:
            return JSONResponse({"error": "invalid request",
                                 "detail": [f"requests: at most {limit} per batch (RISKPIPE_SERVING_MAX_BATCH)"]},
                                status_code=422)
        loaded, results = runtime().scorer.score_batch(batch.requests)
        return _json(BatchScoreResponse(model_version=loaded.version, results=results))

    @app.get("/model")
    async def model() -> dict[str, Any]:
        """The production model being served (503 before the first promotion)."""
        loaded = runtime().scorer.models.require()
        return {"tag": loaded.tag, "version": loaded.version, "device": loaded.device,
                "loaded_at": loaded.loaded_at.isoformat(), "features": loaded.model.feature_columns,
                "thresholds": loaded.model.thresholds.to_dict() if loaded.model.thresholds else None}

    return app


def _json(body: BaseModel) -> Response:
    return Response(body.model_dump_json(), media_type="application/json")


class _Unauthorized(Exception):
    """A missing or wrong API key; answered as 401."""

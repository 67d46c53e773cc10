"""The serving ASGI guard: body limit by Content-Length and by counted chunks, and per-status request metrics."""

from __future__ import annotations

import prometheus_client
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from serving.http_app import RequestGuard
from serving.metrics import ServingMetrics


async def _echo(request: Request) -> JSONResponse:
    body = await request.body()
    return JSONResponse({"bytes": len(body)}, status_code=201 if body else 400)


def _client(limit: int = 1024) -> tuple[TestClient, ServingMetrics, prometheus_client.CollectorRegistry]:
    registry = prometheus_client.CollectorRegistry()
    metrics = ServingMetrics(registry)
    app = Starlette(routes=[Route("/score", _echo, methods=["POST"]), Route("/other", _echo, methods=["POST"])])
    app.add_middleware(RequestGuard, limit=lambda: limit, metrics=lambda: metrics)
    return TestClient(app), metrics, registry


def _count(registry: prometheus_client.CollectorRegistry, status: str) -> float | None:
    return registry.get_sample_value("riskpipe_serving_requests_total", {"endpoint": "/score", "status": status})


def test_small_bodies_pass_and_are_counted_by_status() -> None:
    client, _metrics, registry = _client()
    assert client.post("/score", content=b"x" * 100).json() == {"bytes": 100}
    assert client.post("/score", content=b"").status_code == 400
    assert _count(registry, "201") == 1 and _count(registry, "400") == 1
    assert registry.get_sample_value("riskpipe_serving_request_seconds_count", {"endpoint": "/score"}) == 2


def test_oversized_bodies_are_413_by_header_and_by_streamed_chunks() -> None:
    client, _metrics, registry = _client(limit=1024)
    declared = client.post("/score", content=b"x" * 2048)
    assert declared.status_code == 413 and "RISKPIPE_SERVING_MAX_BODY_BYTES" in declared.json()["error"]
    streamed = client.post("/score", content=iter([b"x" * 600, b"x" * 600]))  # chunked: no content-length
    assert streamed.status_code == 413
    assert _count(registry, "413") == 2


def test_other_paths_are_not_counted() -> None:
    client, _metrics, registry = _client()
    assert client.post("/other", content=b"abc").status_code == 201
    assert registry.get_sample_value("riskpipe_serving_requests_total", {"endpoint": "/other", "status": "201"}) is None

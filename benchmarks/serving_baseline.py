"""The floor for bench_serving: a bare ASGI callable doing only the scoring service's essential work.

    uvicorn benchmarks.serving_baseline:app   (RISKPIPE_* and BENTOML_HOME from the environment)

Per request: parse the JSON body, ONE pipelined Redis read of every catalog group for the
request's entities (``RedisOnlineStore.read_many``, same client settings as serving), a float32 row
in the production model's feature order (NaN for anything unknown) and ``inplace_predict``. No
framework, validation, on-demand features, calibration, reason codes, metrics or prediction log:
whatever latency the real service adds on top of this is the price of those. The groups are the
same frozen ``ServedGroup`` snapshots the service reads with, so the floor pays no avoidable cost.
"""

from __future__ import annotations

import gc
import json
import math
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np

from features.definitions.catalog import FEATURE_GROUPS
from features.online.redis_store import RedisOnlineStore
from riskpipe.settings import get_settings
from serving.online_features import ServedGroup, serving_redis_client
from serving.scorer import ENTITY_FIELDS
from training import model_store
from training.promotion import production_tag

GROUPS = [ServedGroup.of(g) for g in FEATURE_GROUPS]


class _State:
    """Loaded on the first request (uvicorn may import the module before the model is promoted)."""

    store: RedisOnlineStore | None = None
    booster: Any = None
    columns: list[str] = []


def _load() -> None:
    settings = get_settings()
    tag = production_tag(settings)
    if tag is None:
        raise RuntimeError("no production model in BENTOML_HOME")
    model = model_store.load(settings, tag)
    _State.booster, _State.columns = model.booster, list(model.feature_columns)
    _State.store = RedisOnlineStore(serving_redis_client(settings), prefix=settings.online_key_prefix)
    gc.freeze()  # the same GC tuning as the service (serving/service.py), so the floor stays comparable


def _number(value: Any) -> float:
    try:
        return math.nan if value is None else float(value)
    except (TypeError, ValueError):
        return math.nan


def score(body: dict[str, Any]) -> float:
    if _State.store is None:
        _load()
    assert _State.store is not None
    entity = {k: body.get(k) for k in ENTITY_FIELDS}
    groups = [g for g in GROUPS if entity.get(g.entity.join_key) is not None]
    reply = _State.store.read_many([entity], groups, now=datetime.now(UTC))[0]
    values: dict[str, Any] = {"amount": body.get("amount")}
    for got in reply.values():
        values.update(got.values)
    row = np.array([[_number(values.get(c)) for c in _State.columns]], dtype=np.float32)
    return float(_State.booster.inplace_predict(row, validate_features=False)[0])


async def _body(receive: Callable[[], Awaitable[dict]]) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def app(scope: dict, receive: Callable[[], Awaitable[dict]], send: Callable) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    status, payload = 404, {"error": "not found"}
    if scope["path"] == "/healthz":
        status, payload = 200, {"ok": True}
    elif scope["path"] == "/score" and scope["method"] == "POST":
        try:
            status, payload = 200, {"score": score(json.loads(await _body(receive)))}
        except Exception as exc:  # the load generator counts non-200s as errors
            status, payload = 500, {"error": str(exc)[:200]}
    body = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})

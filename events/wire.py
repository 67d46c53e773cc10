"""Wire format of every event topic: UTF-8 JSON, event times as ISO-8601 with ``Z``.

JSON keeps the topics readable with any Kafka tool and by Faust's ``json`` codec. orjson
is used when installed (several times faster); otherwise events are serialized by
pydantic-core (Rust, still ~2x faster than ``model_dump`` + ``json``) and generic objects by
the standard library, so the format never depends on an optional package. All paths give
compact JSON with the same fields and ``Z`` times, and ``events.decode`` accepts any of them.
"""

from __future__ import annotations

from typing import Any

from events.contracts import Event

try:  # pragma: no cover - depends on the environment
    import orjson

    def dumps(obj: Any) -> bytes:
        """Serialize a JSON-ready object to UTF-8 bytes."""
        return orjson.dumps(obj)

    def loads(data: bytes | str) -> Any:
        return orjson.loads(data)

    def encode(event: Event) -> bytes:
        """Value bytes of ``event`` on its topic."""
        return orjson.dumps(event.model_dump(), option=orjson.OPT_UTC_Z)

    JSON_LIBRARY = "orjson"
except ImportError:  # pragma: no cover - depends on the environment
    import json

    _encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)

    def dumps(obj: Any) -> bytes:
        """Serialize a JSON-ready object to UTF-8 bytes (NaN is refused: it is not JSON)."""
        return _encoder.encode(obj).encode("utf-8")

    def loads(data: bytes | str) -> Any:
        return json.loads(data)

    def encode(event: Event) -> bytes:
        """Value bytes of ``event`` on its topic (pydantic renders UTC datetimes with ``Z``)."""
        return event.model_dump_json().encode("utf-8")

    JSON_LIBRARY = "json"


def encode_key(event: Event) -> bytes:
    """Key bytes: the account id, so Faust and the producers agree on the partition (murmur2)."""
    return event.key.encode("utf-8")

"""The feature-update message on ``features.<group>``: the contract between compute and ingestion.

Key = the entity key (UTF-8), so one entity's updates stay ordered on one partition. Value =
JSON with the group, its version, the entity and its key, the event time the values describe
and the features. ``correction`` is true when the message may replace an update emitted
earlier for the same (entity, event_time) (an out-of-order event changed it): ingestion then
upserts instead of keeping the first row. ``emitted_at`` (epoch seconds) lets anyone measure
end-to-end latency from the message alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from streaming.window_state import from_us

FORMAT_VERSION = 1


class UpdateError(ValueError):
    """A feature-update record that does not follow the contract; the message names the field."""


@dataclass(frozen=True, slots=True)
class FeatureUpdate:
    group: str
    version: int
    join_key: str
    entity_key: str
    event_time_us: int
    features: dict[str, Any]
    correction: bool = False
    emitted_at: float | None = None

    @property
    def event_time(self) -> datetime:
        """Naive UTC, the storage convention."""
        return from_us(self.event_time_us)


def encode_update(update: FeatureUpdate) -> bytes:
    payload = {
        "format": FORMAT_VERSION,
        "group": update.group,
        "version": update.version,
        "join_key": update.join_key,
        "entity_key": update.entity_key,
        "event_time": f"{update.event_time.isoformat(timespec='microseconds')}Z",
        "event_time_us": update.event_time_us,
        "features": update.features,
        "correction": update.correction,
        "emitted_at": update.emitted_at,
    }
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def _field(payload: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    if name not in payload:
        raise UpdateError(f"feature update: field {name!r} is missing")
    value = payload[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise UpdateError(f"feature update: field {name!r} has the wrong type ({type(value).__name__})")
    return value


def decode_update(value: bytes | None) -> FeatureUpdate:
    """Parse and check one record value; raises ``UpdateError`` naming the offending field."""
    if not value:
        raise UpdateError("feature update: empty record")
    try:
        payload = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UpdateError(f"feature update: not JSON ({exc})") from exc
    if not isinstance(payload, dict):
        raise UpdateError("feature update: value must be a JSON object")
    if payload.get("format") != FORMAT_VERSION:
        raise UpdateError(f"feature update: field 'format' must be {FORMAT_VERSION}, got {payload.get('format')!r}")
    return FeatureUpdate(
        group=_field(payload, "group", str),
        version=_field(payload, "version", int),
        join_key=_field(payload, "join_key", str),
        entity_key=_field(payload, "entity_key", str),
        event_time_us=_field(payload, "event_time_us", int),
        features=_field(payload, "features", dict),
        correction=bool(payload.get("correction", False)),
        emitted_at=payload.get("emitted_at"),
    )

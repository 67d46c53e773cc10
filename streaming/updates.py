"""The feature-update message on ``features.<group>``: the contract between compute and ingestion.

One message carries *many* updates of one group: every (entity, event time) point that one
compute batch emitted for the entities of one partition (``pack_rows`` splits long packs). One
message per update used to cost ~5 messages per input event; packing makes the per-message
costs (produce, Faust/consumer overhead, JSON framing) per batch instead of per update. The
offline history stays one row per (entity, event time): ingestion unpacks.

Key = the first entity key of the pack; every entity of a pack hashes to the same partition
(``streaming.partitions``), so one entity's updates stay ordered on one partition. Value =
JSON with the group, its version, the join key, the feature names once, ``rows`` as
``[entity_key, event_time_us, correction, [value per feature]]`` and ``emitted_at`` (epoch
seconds, so anyone can measure latency from the message alone). ``correction`` is true when
the row may replace one emitted earlier for the same (entity, event_time) (an out-of-order
event changed it): ingestion then upserts instead of keeping the first row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pydantic_core

from streaming.window_state import from_us

FORMAT_VERSION = 2
MAX_ROWS_PER_MESSAGE = 500  # keeps a message far below Kafka's default 1 MB limit (30 features x 500 rows ~ 200 kB)


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


Row = list[Any]  # [entity_key, event_time_us, correction, [values in ``names`` order]]


@dataclass(frozen=True, slots=True)
class UpdatePack:
    """The rows of one message (or of updates of one group version) column by column.

    Ingestion builds its Arrow columns straight from these lists: an object with a dict per row, then
    ``Table.from_pylist``, cost more CPU than the stores' writes. ``values[i]`` is row i in ``names`` order.
    """

    group: str
    version: int
    join_key: str
    names: tuple[str, ...]
    keys: list[str]
    times: list[int]
    corrections: list[bool]
    values: list[list[Any]]
    emitted_at: float | None = None

    def __len__(self) -> int:
        return len(self.keys)

    def row(self, i: int) -> UpdatePack:
        """A pack of row ``i`` alone (to set one row apart, e.g. dead-letter it)."""
        return UpdatePack(self.group, self.version, self.join_key, self.names, self.keys[i:i + 1],
                          self.times[i:i + 1], self.corrections[i:i + 1], self.values[i:i + 1], self.emitted_at)

    def updates(self) -> list[FeatureUpdate]:
        """One object per row (tests, tools, dead letters); a feature name listed twice keeps its last value."""
        rows = zip(self.keys, self.times, self.corrections, self.values, strict=True)
        return [FeatureUpdate(self.group, self.version, self.join_key, key, t,
                              dict(zip(self.names, values, strict=True)), correction, self.emitted_at)
                for key, t, correction, values in rows]


def pack_updates(updates: Sequence[FeatureUpdate]) -> UpdatePack:
    """Updates of one group version as one pack; a feature an update does not carry is None in its row."""
    if not updates:
        raise UpdateError("feature update: no updates to pack")
    first = updates[0]
    if any((u.group, u.version, u.join_key) != (first.group, first.version, first.join_key) for u in updates):
        raise UpdateError("feature update: one message holds updates of one group version")
    names = tuple(dict.fromkeys(n for u in updates for n in u.features))
    return UpdatePack(first.group, first.version, first.join_key, names, [u.entity_key for u in updates],
                      [u.event_time_us for u in updates], [u.correction for u in updates],
                      [[u.features.get(n) for n in names] for u in updates], first.emitted_at)


def encode_rows(group: str, version: int, join_key: str, names: Sequence[str], rows: Sequence[Row],
                emitted_at: float | None) -> bytes:
    """One message for ``rows`` of one group (the hot path of the compute worker: no per-row objects).

    NaN and infinities become null: to the online and offline stores a NaN feature means missing.
    """
    payload = {"format": FORMAT_VERSION, "group": group, "version": version, "join_key": join_key,
               "features": names, "rows": rows, "emitted_at": emitted_at}
    return pydantic_core.to_json(payload, inf_nan_mode="null")


def encode_updates(updates: Sequence[FeatureUpdate]) -> bytes:
    """One message for updates of one group (tests, tools); compute uses ``encode_rows``."""
    pack = pack_updates(updates)
    rows = [list(row) for row in zip(pack.keys, pack.times, pack.corrections, pack.values, strict=True)]
    return encode_rows(pack.group, pack.version, pack.join_key, pack.names, rows, pack.emitted_at)


def pack_rows(rows: Sequence[Row], limit: int = MAX_ROWS_PER_MESSAGE) -> list[Sequence[Row]]:
    """``rows`` in chunks of at most ``limit`` (one message each)."""
    return [rows[i:i + limit] for i in range(0, len(rows), limit)]


def _field(payload: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    if name not in payload:
        raise UpdateError(f"feature update: field {name!r} is missing")
    value = payload[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise UpdateError(f"feature update: field {name!r} has the wrong type ({type(value).__name__})")
    return value


def decode_updates(value: bytes | None) -> list[FeatureUpdate]:
    """One record value as update objects (tests, tools); ingestion uses the pack's columns instead."""
    return decode_pack(value).updates()


def decode_pack(value: bytes | None) -> UpdatePack:
    """Parse and check one record value; raises ``UpdateError`` naming the offending field (the whole
    message is rejected: its rows were written together, so a broken one says the writer is broken)."""
    if not value:
        raise UpdateError("feature update: empty record")
    try:
        payload = pydantic_core.from_json(value)
    except ValueError as exc:
        raise UpdateError(f"feature update: not JSON ({exc})") from exc
    if not isinstance(payload, dict):
        raise UpdateError("feature update: value must be a JSON object")
    if payload.get("format") != FORMAT_VERSION:
        raise UpdateError(f"feature update: field 'format' must be {FORMAT_VERSION}, got {payload.get('format')!r}")
    group = _field(payload, "group", str)
    version = _field(payload, "version", int)
    join_key = _field(payload, "join_key", str)
    names = _field(payload, "features", list)
    if not all(isinstance(n, str) for n in names):
        raise UpdateError("feature update: field 'features' must list feature names")
    pack = UpdatePack(group, version, join_key, tuple(names), [], [], [], [], payload.get("emitted_at"))
    for i, row in enumerate(_field(payload, "rows", list)):
        try:
            key, t, correction, values = row
        except (TypeError, ValueError):
            raise UpdateError(f"feature update: rows[{i}] is not [entity_key, event_time_us, correction, values]"
                              ) from None
        if not isinstance(key, str) or not isinstance(t, int) or isinstance(t, bool):
            raise UpdateError(f"feature update: rows[{i}] needs a string entity key and an integer event_time_us")
        if not isinstance(values, list) or len(values) != len(names):
            raise UpdateError(f"feature update: rows[{i}] has {len(values) if isinstance(values, list) else 'no'} "
                              f"values for {len(names)} features")
        pack.keys.append(key)
        pack.times.append(t)
        pack.corrections.append(bool(correction))
        pack.values.append(values)
    return pack

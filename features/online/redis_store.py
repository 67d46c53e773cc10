"""Redis online store: the latest feature values per (group, version, entity), for serving.

Layout: one hash per ``<prefix>:fv:<group>:v<version>:<entity_key>`` holding the feature fields
plus ``__ts`` (the event time, in microseconds, that the values describe).

- Writes are batched Lua calls (``features.online.lua``) sent in pipelines: idempotent, and
  newest-event-time-wins decided server-side, so at-least-once ingestion and replays are safe.
  Keys travel inside the script payload, so this targets a single Redis, not Redis Cluster.
- TTL is enforced on read against the caller's clock: a value older than the group TTL comes back
  as ``expired`` with None values (Feast would serve it). The Redis key expiry
  (event time + TTL + a grace period) only collects garbage; the grace keeps the newest-wins
  guard alive a little past expiry.
- A whole feature vector across groups is one pipeline of HMGETs: one round trip per request,
  and one per batch of entities for ``read_many``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import redis

from features.offline.arrow_utils import TS, normalize_timestamps, to_arrow
from features.online.codec import decode_value, encode_column
from features.online.lua import TS_FIELD, WRITE_NEWEST_WINS
from features.types import FeatureGroupLike, check_identifier, feature_dtypes, group_table, ttl_micros
from riskpipe.errors import UsageError
from riskpipe.settings import Settings

log = logging.getLogger(__name__)

Status = Literal["ok", "missing", "expired"]

_SCRIPT_ROWS = 250  # rows per script call: amortises the call, blocks Redis for ~1 ms at most
_PIPELINE_SCRIPTS = 40  # script calls per round trip


@dataclass(frozen=True)
class GroupValues:
    """One group's part of a feature vector; ``status`` says why values may be None."""

    status: Status
    event_time: datetime | None  # aware UTC; present for ok and expired, so callers can compute freshness
    values: dict[str, Any] = field(default_factory=dict)


class RedisOnlineStore:
    def __init__(self, client: redis.Redis, *, prefix: str = "rp", expiry_grace: timedelta = timedelta(hours=1)):
        self._redis = client
        self.prefix = prefix
        self._grace_ms = expiry_grace // timedelta(milliseconds=1)
        self._write = client.register_script(WRITE_NEWEST_WINS)
        self._dtypes: dict[tuple[str, int], dict[str, str]] = {}  # per (group, version), see ``_feature_dtypes``

    @classmethod
    def from_settings(cls, settings: Settings) -> RedisOnlineStore:
        password = settings.redis_password.get_secret_value() if settings.redis_password else None
        client = redis.Redis.from_url(settings.redis_dsn, password=password)
        return cls(
            client, prefix=settings.online_key_prefix, expiry_grace=timedelta(seconds=settings.online_expiry_grace_s)
        )

    @property
    def client(self) -> redis.Redis:
        """The underlying client, for read-only maintenance (e.g. the sync job's SCAN)."""
        return self._redis

    def key(self, group: FeatureGroupLike, entity_key: Any) -> str:
        return f"{self.prefix}:fv:{group.name}:v{group.version}:{entity_key}"

    # ---- writes ---------------------------------------------------------------------------------
    def write_batch(self, group: FeatureGroupLike, data: Any) -> int:
        """Upsert rows (join key, event_time, any subset of features); returns how many were applied.

        A row is applied when its event time is newer than or equal to the stored one (equal = a
        replay, which rewrites the same values); older rows are skipped server-side.

        A null feature value removes that field (the value is unknown as of that event time);
        features absent from the batch are left as they were.
        """
        return self.write_batches([(group, data)])

    def write_batches(self, batches: Sequence[tuple[FeatureGroupLike, Any]]) -> int:
        """``write_batch`` for several groups in shared pipelines (one round trip for a micro-batch of
        stream ingestion instead of one per group). Every batch is checked before anything is sent."""
        payloads = [p for group, data in batches for p in self._payloads(group, data)]
        written = 0
        pipe = self._redis.pipeline(transaction=False)
        for n, payload in enumerate(payloads, start=1):
            self._write(args=[payload], client=pipe)
            if n % _PIPELINE_SCRIPTS == 0 or n == len(payloads):
                written += sum(int(r) for r in pipe.execute())
        log.debug("online write", extra={"groups": [g.name for g, _ in batches], "written": written})
        return written

    def _payloads(self, group: FeatureGroupLike, data: Any) -> list[str]:
        """One group's batch, validated, as the JSON arguments of the write script (``_SCRIPT_ROWS`` rows each)."""
        what = f"online write to group {group.name!r}"
        group_table(group)  # validates name and version: both become part of the key
        table = normalize_timestamps(to_arrow(data, what))
        dtypes = self._feature_dtypes(group)
        key_col = group.entity.join_key
        for required in (key_col, "event_time"):
            if required not in table.column_names:
                raise UsageError(f"{what}: batch has no {required!r} column")
        unknown = set(table.column_names) - set(dtypes) - {key_col, "event_time", "created_at"}
        if unknown:
            raise UsageError(f"{what}: unknown column(s) {sorted(unknown)}")
        if table.num_rows == 0:
            return []
        if table.column(key_col).null_count or table.column("event_time").null_count:
            raise UsageError(f"{what}: {key_col!r} and 'event_time' must not be null")
        if table.schema.field("event_time").type != TS:
            raise UsageError(f"{what}: 'event_time' must be a timestamp, got {table.schema.field('event_time').type}")

        # Everything below is column-wise (Arrow casts, one JSON document per chunk): no per-row Python.
        ts = pc.cast(table.column("event_time"), pa.int64())
        ttl_us = ttl_micros(group)
        names = [n for n in dtypes if n in table.column_names]
        columns = [encode_column(table, n, dtypes[n], what) for n in names]
        keys = pc.binary_join_element_wise(
            pa.scalar(self.key(group, "")), pc.cast(table.column(key_col), pa.string()), ""
        ).to_pylist()
        ts_text = pc.cast(ts, pa.string()).to_pylist()
        expire = None
        if ttl_us is not None:
            at_ms = pc.add(pc.divide(pc.add(ts, ttl_us), 1000), self._grace_ms)
            expire = pc.cast(at_ms, pa.string()).to_pylist()
        payloads = []
        for lo in range(0, len(keys), _SCRIPT_ROWS):
            hi = lo + _SCRIPT_ROWS
            payload = {"k": keys[lo:hi], "t": ts_text[lo:hi], "f": names, "v": [c[lo:hi] for c in columns]}
            if expire is not None:
                payload["x"] = expire[lo:hi]
            payloads.append(json.dumps(payload, separators=(",", ":")))
        return payloads

    def _feature_dtypes(self, group: FeatureGroupLike) -> dict[str, str]:
        """``feature_dtypes`` once per group version: a group's ``features`` rebuilds its feature models on every
        call, which cost stream ingestion more than encoding the values, and a read of all 10 groups 0.4 of its
        0.66 ms (p50). A version's features never change."""
        key = (group.name, group.version)
        if key not in self._dtypes:
            self._dtypes[key] = feature_dtypes(group)
        return self._dtypes[key]

    # ---- reads ----------------------------------------------------------------------------------
    def read(
        self, entity: Mapping[str, Any], groups: Sequence[FeatureGroupLike], *, now: datetime | None = None
    ) -> dict[str, GroupValues]:
        """The full feature vector of one request (all groups) in one round trip."""
        return self.read_many([entity], groups, now=now)[0]

    def read_many(
        self,
        entities: Sequence[Mapping[str, Any]],
        groups: Sequence[FeatureGroupLike],
        *,
        now: datetime | None = None,
    ) -> list[dict[str, GroupValues]]:
        """Feature vectors for many requests: one pipeline of HMGETs, results in input order."""
        now_us = _epoch_us(now or datetime.now(UTC))
        plans = [(g, list(self._feature_dtypes(g).items()), ttl_micros(g)) for g in groups if group_table(g)]
        pipe = self._redis.pipeline(transaction=False)
        for entity in entities:
            for group, features, _ in plans:
                join_key = check_identifier(group.entity.join_key, "join key")
                if join_key not in entity or entity[join_key] is None:
                    raise UsageError(f"online read of group {group.name!r}: entity has no {join_key!r} value")
                pipe.hmget(self.key(group, entity[join_key]), [TS_FIELD, *(n for n, _ in features)])
        replies = iter(pipe.execute())
        return [
            {group.name: _decode(next(replies), features, ttl_us, now_us) for group, features, ttl_us in plans}
            for _ in entities
        ]


def _epoch_us(value: datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def _decode(reply: list[bytes | None], features: list[tuple[str, str]], ttl_us: int | None, now_us: int) -> GroupValues:
    raw_ts, *raw_values = reply
    if raw_ts is None:
        return GroupValues("missing", None, dict.fromkeys((n for n, _ in features), None))
    ts = int(raw_ts)
    event_time = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=ts)
    if ttl_us is not None and ts < now_us - ttl_us:
        return GroupValues("expired", event_time, dict.fromkeys((n for n, _ in features), None))
    values = {name: decode_value(raw, dtype) for (name, dtype), raw in zip(features, raw_values, strict=True)}
    return GroupValues("ok", event_time, values)

"""The online part of a feature vector: every catalog group for every entity of a request, from Redis.

All groups of one request are one pipelined round trip (``RedisOnlineStore.read_many``); a batch
is one round trip per distinct set of entity keys present (a request without a counterparty skips
the counterparty group instead of reading a key that cannot exist).

Degradation: the serving Redis client has a short socket timeout and no retries, so a slow or dead
Redis costs one timeout, not a stalled request. After a failure the fetcher skips Redis for
``retry_s`` (every request in that window is degraded immediately), then tries again: it recovers
by itself when Redis returns, with no restart.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from features.definitions.catalog import FEATURE_GROUPS
from features.online.redis_store import GroupValues, RedisOnlineStore
from features.types import EntityLike, FeatureGroupLike, FeatureLike, feature_dtypes
from riskpipe.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServedGroup:
    """A catalog group frozen for the request path (``FeatureGroupLike``: what the store needs).

    A ``WindowedFeatureGroup`` derives its feature list from its aggregations on every access
    (dozens of pydantic objects), and the store asks for it on every read: for the ten catalog
    groups that was the biggest CPU item of a request (profiled). Here it is computed once.
    """

    name: str
    version: int
    entity: EntityLike
    ttl: timedelta
    features: list[FeatureLike]

    @classmethod
    def of(cls, group: FeatureGroupLike) -> ServedGroup:
        return cls(group.name, group.version, group.entity, group.ttl, list(group.features))


@dataclass(frozen=True)
class OnlineLookup:
    """Feature values of one request (None = unknown), freshness per group and whether Redis answered."""

    values: dict[str, Any]
    freshness_s: dict[str, float | None]
    degraded: bool
    statuses: dict[str, str] = field(default_factory=dict)


def serving_redis_client(settings: Settings) -> redis.Redis:
    """A client that fails fast: short timeouts, no retries (a retry would double the latency budget)."""
    timeout = settings.serving_redis_timeout_ms / 1000
    password = settings.redis_password.get_secret_value() if settings.redis_password else None
    return redis.Redis.from_url(settings.redis_dsn, password=password, socket_timeout=timeout,
                                socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0),
                                retry_on_timeout=False, health_check_interval=0)


class OnlineFeatureFetcher:
    def __init__(self, store: RedisOnlineStore, groups: Sequence[FeatureGroupLike] = FEATURE_GROUPS,
                 retry_s: float = 0.5):
        self.store = store
        self.groups = [ServedGroup.of(g) for g in groups]
        self.retry_s = retry_s
        self._skip_until = 0.0
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> OnlineFeatureFetcher:
        store = RedisOnlineStore(serving_redis_client(settings), prefix=settings.online_key_prefix)
        return cls(store, retry_s=settings.serving_redis_retry_s)

    def _groups_for(self, entity: Mapping[str, Any]) -> tuple[int, ...]:
        """Indexes (groups are not hashable) of the groups whose join key the request carries."""
        return tuple(i for i, g in enumerate(self.groups) if entity.get(g.entity.join_key) is not None)

    def fetch(self, entities: Sequence[Mapping[str, Any]], now: datetime) -> list[OnlineLookup]:
        """One lookup per entity mapping (join key -> value), in input order; never raises for Redis trouble."""
        partitions: dict[tuple[int, ...], list[int]] = {}
        for i, entity in enumerate(entities):
            partitions.setdefault(self._groups_for(entity), []).append(i)
        out: list[OnlineLookup | None] = [None] * len(entities)
        for groups, indexes in partitions.items():
            replies = self._read([entities[i] for i in indexes], [self.groups[g] for g in groups], now)
            for i, reply in zip(indexes, replies, strict=True):
                out[i] = self._lookup(reply, now)
        return [o for o in out if o is not None]

    def _read(self, entities: list[Mapping[str, Any]], groups: list[FeatureGroupLike],
              now: datetime) -> list[dict[str, GroupValues]] | list[None]:
        if not groups:
            return [{} for _ in entities]
        if time.monotonic() < self._skip_until:
            return [None] * len(entities)
        try:
            return self.store.read_many(entities, groups, now=now)
        except redis.RedisError as exc:
            with self._lock:
                self._skip_until = time.monotonic() + self.retry_s
            log.warning("online store unavailable; scoring degraded", extra={"error": str(exc)[:200]})
            return [None] * len(entities)

    def _lookup(self, reply: dict[str, GroupValues] | None, now: datetime) -> OnlineLookup:
        values: dict[str, Any] = {}
        freshness: dict[str, float | None] = {}
        statuses: dict[str, str] = {}
        for group in self.groups:
            got = reply.get(group.name) if reply is not None else None
            if got is None:
                values.update(dict.fromkeys(feature_dtypes(group), None))
                freshness[group.name] = None
                statuses[group.name] = "unavailable" if reply is None else "no_key"
                continue
            values.update(got.values)
            statuses[group.name] = got.status
            freshness[group.name] = (now - got.event_time).total_seconds() if got.event_time else None
        return OnlineLookup(values, freshness, reply is None, statuses)

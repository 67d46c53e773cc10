"""Fixtures of the orchestration integration tests: a real DuckDB file and a real Redis per test."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis

from features.batch.synthetic import synthetic_logins, synthetic_transactions
from features.offline import DuckDBOfflineStore
from features.online.redis_store import RedisOnlineStore
from riskpipe.settings import Settings

# The current whole hour: Redis expires keys by the real clock, so values must be inside their TTL now.
RECENT = datetime.now(UTC).replace(minute=0, second=0, microsecond=0, tzinfo=None)


@pytest.fixture
def recent() -> datetime:
    """The current whole hour (naive UTC): seeded events end there."""
    return RECENT


@pytest.fixture
def rp_settings(settings: Settings, redis_url: str, unique: str) -> Settings:
    """Test settings: tmp DuckDB file, the session Redis, a per-test online key prefix."""
    return settings.model_copy(update={"redis_url": redis_url, "online_key_prefix": unique,
                                       "offline_lock_wait_s": 10.0})


@pytest.fixture
def store(rp_settings: Settings) -> Iterator[DuckDBOfflineStore]:
    s = DuckDBOfflineStore(rp_settings.duckdb_path)
    yield s
    s.close()


@pytest.fixture
def online(rp_settings: Settings) -> RedisOnlineStore:
    return RedisOnlineStore.from_settings(rp_settings)


@pytest.fixture
def redis_client(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url)


@pytest.fixture
def seeded(store: DuckDBOfflineStore) -> DuckDBOfflineStore:
    """Two days of synthetic logins and transactions ending ~now (raw tables of the offline store)."""
    store.append("events_logins", synthetic_logins(600, seed=1, start=RECENT - timedelta(days=1),
                                                   span=timedelta(days=1)))
    store.append("events_transactions", synthetic_transactions(600, seed=2, start=RECENT - timedelta(days=1),
                                                               span=timedelta(days=1)))
    return store

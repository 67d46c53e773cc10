"""Online feature store (Redis): latest values per entity for low-latency serving."""

from features.online.redis_store import GroupValues, RedisOnlineStore

__all__ = ["GroupValues", "RedisOnlineStore"]

"""Plain dataclasses satisfying ``features.types.FeatureGroupLike``, for tests and benchmarks.

The storage layer must not depend on the definitions package (it is built in parallel and may
add validation the stores do not need), so tests and benchmarks describe groups with these.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from features.types import Dtype


@dataclass(frozen=True)
class StubEntity:
    name: str
    join_key: str


@dataclass(frozen=True)
class StubFeature:
    name: str
    dtype: Dtype


@dataclass
class StubGroup:
    name: str
    entity: StubEntity
    features: list[StubFeature]
    ttl: timedelta = timedelta(0)
    version: int = 1
    schedule: str = "stream"


def stub_group(
    name: str, join_key: str, ttl: timedelta = timedelta(0), version: int = 1, **features: Dtype
) -> StubGroup:
    """``stub_group("txn", "account_id", ttl, amount_sum="float64")`` -> a group over that key."""
    entity = StubEntity(join_key.removesuffix("_id") or join_key, join_key)
    return StubGroup(name, entity, [StubFeature(n, d) for n, d in features.items()], ttl=ttl, version=version)

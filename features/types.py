"""The minimal shape of a feature group that the stores and PIT retrieval rely on.

The feature-definitions package (``features/definitions/``) owns the real ``FeatureGroup``;
the storage layer types against these Protocols instead, so the two can evolve separately
and tests can pass tiny dataclasses. Anything with these attributes is accepted.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Literal, Protocol, runtime_checkable

from riskpipe.errors import UsageError

Dtype = Literal["int64", "float64", "string", "bool"]
DTYPES: frozenset[str] = frozenset({"int64", "float64", "string", "bool"})

# Names become SQL identifiers and Redis key parts, so they are restricted to a safe alphabet.
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class EntityLike(Protocol):
    name: str
    join_key: str


class FeatureLike(Protocol):
    name: str
    dtype: Dtype


@runtime_checkable
class FeatureGroupLike(Protocol):
    """What storage needs from a group: identity, entity key, freshness bound and typed columns."""

    name: str
    version: int
    entity: EntityLike
    ttl: timedelta
    features: list[FeatureLike]


def check_identifier(value: str, what: str) -> str:
    """Reject names that would need quoting (or allow injection) in SQL and Redis keys."""
    if not isinstance(value, str) or not _IDENT.match(value):
        raise UsageError(f"{what} {value!r} is not a valid identifier (letters, digits, underscore; no leading digit)")
    return value


def group_table(group: FeatureGroupLike) -> str:
    """Offline history table of a group: ``fg_<name>_v<version>`` (the shared convention)."""
    check_identifier(group.name, "feature group name")
    if not isinstance(group.version, int) or group.version < 1:
        raise UsageError(f"feature group {group.name!r}: version must be a positive int, got {group.version!r}")
    return f"fg_{group.name}_v{group.version}"


def ttl_micros(group: FeatureGroupLike) -> int | None:
    """TTL in microseconds, or None when the group never expires (ttl missing or zero, as in Feast)."""
    ttl = getattr(group, "ttl", None)
    if ttl is None or ttl <= timedelta(0):
        return None
    return ttl // timedelta(microseconds=1)


def feature_dtypes(group: FeatureGroupLike) -> dict[str, str]:
    """Feature name -> dtype, validated once so stores never see an unknown dtype."""
    out: dict[str, str] = {}
    for feature in group.features:
        check_identifier(feature.name, f"feature group {group.name!r}: feature name")
        if feature.dtype not in DTYPES:
            raise UsageError(
                f"feature {group.name}:{feature.name}: dtype {feature.dtype!r} is not one of {sorted(DTYPES)}"
            )
        out[feature.name] = feature.dtype
    return out

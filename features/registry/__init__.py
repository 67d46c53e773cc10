"""Feature registry: versioned, diffable records of the feature-group definitions (plan / apply).

``Registry(store).plan(groups)`` diffs code against what was applied; ``.apply(groups)``
records it. The versioning policy (refuse a changed computation with an unbumped version)
is described in features.registry.plan.
"""

from features.registry.plan import AppliedGroup, Change, Plan, make_plan
from features.registry.store import APPLIES_TABLE, GROUPS_TABLE, ApplyResult, Registry

__all__ = ["APPLIES_TABLE", "GROUPS_TABLE", "AppliedGroup", "ApplyResult", "Change", "Plan", "Registry", "make_plan"]

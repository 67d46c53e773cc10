"""Registry plan: the diff between the definitions in code and what was applied (pure, no I/O).

Versioning policy (refuse, never auto-bump): a ``(name, version)`` pair, once applied, means
one computation forever. Changing what a group computes (its ``fingerprint``) without bumping
``version`` is an error that names the group and the version to use. Auto-bumping was
rejected because the version is part of the offline table name and of the online keys that
models were trained against: code saying v1 while the store holds v2 is exactly the silent
training/serving mismatch the registry exists to prevent.

What counts as what:

* ``add``: a group never applied (or applied, then removed): needs a backfill.
* ``change``: a new version (a bumped computation, or going back to an earlier version whose
  fingerprint matches what that version meant): needs a backfill of the new table.
* ``metadata``: same version and computation, other fields changed (description, owner, tags,
  TTL): recorded as a new registry row, no backfill.
* ``remove``: applied but no longer in code: recorded as a ``removed`` row; history and
  tables are kept (nothing is deleted or overwritten).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from features.definitions.groups import FeatureGroup, parse_group

Action = Literal["add", "change", "metadata", "remove", "unchanged"]
_SYMBOL = {"add": "+", "change": "~", "metadata": "*", "remove": "-", "unchanged": "="}


@dataclass(frozen=True)
class AppliedGroup:
    """One row of ``registry_feature_groups``: a group as recorded by one apply."""

    name: str
    version: int
    fingerprint: str
    definition_hash: str
    status: Literal["active", "removed"]
    definition: str
    apply_id: str
    apply_seq: int
    applied_at: datetime
    applied_by: str

    def group(self) -> FeatureGroup:
        return parse_group(self.definition)


@dataclass(frozen=True)
class Change:
    """One line of the plan."""

    name: str
    action: Action
    old_version: int | None
    new_version: int | None
    backfill: bool
    details: tuple[str, ...] = ()
    group: FeatureGroup | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "action": self.action, "old_version": self.old_version,
                "new_version": self.new_version, "backfill": self.backfill, "details": list(self.details)}


@dataclass
class Plan:
    """All changes, in code order then removals; ``errors`` block ``apply``."""

    changes: list[Change] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def pending(self) -> list[Change]:
        return [c for c in self.changes if c.action != "unchanged"]

    @property
    def has_changes(self) -> bool:
        return bool(self.pending)

    def counts(self) -> dict[str, int]:
        return {a: sum(c.action == a for c in self.changes) for a in ("add", "change", "metadata", "remove")}

    def to_dict(self) -> dict[str, Any]:
        return {"changes": [c.to_dict() for c in self.changes], "errors": self.errors, "counts": self.counts()}

    def render(self) -> str:
        """The human-readable plan, like ``terraform plan``: one line per group, then a summary."""
        lines = []
        for c in self.changes:
            versions = _versions(c)
            backfill = "  [backfill]" if c.backfill else ""
            lines.append(f"{_SYMBOL[c.action]} {c.name:<28} {c.action:<9} {versions}{backfill}")
            lines += [f"      {d}" for d in c.details]
        lines += [f"! {e}" for e in self.errors]
        n = self.counts()
        lines.append(f"Plan: {n['add']} to add, {n['change']} to change, {n['metadata']} metadata, "
                     f"{n['remove']} to remove, {len(self.errors)} error(s).")
        return "\n".join(lines)


def _versions(c: Change) -> str:
    if c.old_version is not None and c.new_version is not None and c.old_version != c.new_version:
        return f"v{c.old_version} -> v{c.new_version}"
    return f"v{c.new_version if c.new_version is not None else c.old_version}"


def _differences(old: FeatureGroup, new: FeatureGroup) -> tuple[str, ...]:
    """Which fields and features differ, for the plan's detail lines."""
    before, after = old.model_dump(mode="json"), new.model_dump(mode="json")
    fields = sorted(k for k in before.keys() | after.keys() if k != "version" and before.get(k) != after.get(k))
    out = [f"fields: {', '.join(fields)}"] if fields else []
    old_f = {f.name: f.dtype for f in old.features}
    new_f = {f.name: f.dtype for f in new.features}
    if added := sorted(new_f.keys() - old_f.keys()):
        out.append(f"features added: {', '.join(added)}")
    if removed := sorted(old_f.keys() - new_f.keys()):
        out.append(f"features removed: {', '.join(removed)}")
    if retyped := sorted(n for n in old_f.keys() & new_f.keys() if old_f[n] != new_f[n]):
        out.append(f"features retyped: {', '.join(retyped)}")
    return tuple(out)


def make_plan(desired: Sequence[FeatureGroup], current: Mapping[str, AppliedGroup],
              history: Mapping[tuple[str, int], str]) -> Plan:
    """Diff code against the registry.

    ``current`` is the newest registry row per group name; ``history`` maps every
    ``(name, version)`` ever applied to its fingerprint.
    """
    plan = Plan()
    seen: set[str] = set()
    for group in desired:
        if group.name in seen:
            plan.errors.append(f"{group.name}: defined twice in code")
            continue
        seen.add(group.name)
        fingerprint = group.fingerprint()
        versions = [v for (n, v) in history if n == group.name]
        recorded = history.get((group.name, group.version))
        if recorded is not None and recorded != fingerprint:
            plan.errors.append(
                f"{group.name}: the computation changed but version {group.version} was already applied with "
                f"another definition; bump version to {max(versions) + 1}")
            continue
        if recorded is None and versions and group.version < max(versions):
            plan.errors.append(f"{group.name}: version {group.version} is below the applied v{max(versions)} "
                               f"and was never applied; use version {max(versions) + 1}")
            continue
        cur = current.get(group.name)
        if cur is None or cur.status == "removed":
            note = (f"re-added (was v{cur.version}, removed)",) if cur is not None else ()
            plan.changes.append(Change(group.name, "add", None, group.version, True, note, group))
        elif cur.version != group.version:
            details = _differences(cur.group(), group)
            if recorded is not None:
                details = (f"back to the applied definition of v{group.version}", *details)
            elif cur.fingerprint == fingerprint:
                details = ("version bump only: same computation", *details)
            plan.changes.append(Change(group.name, "change", cur.version, group.version, True, details, group))
        elif cur.definition_hash != group.definition_hash():
            plan.changes.append(Change(group.name, "metadata", cur.version, group.version, False,
                                       _differences(cur.group(), group), group))
        else:
            plan.changes.append(Change(group.name, "unchanged", cur.version, group.version, False, (), group))
    for name, cur in sorted(current.items()):
        if name not in seen and cur.status == "active":
            plan.changes.append(Change(name, "remove", cur.version, None, False,
                                       ("kept in history; its offline table is not dropped",), None))
    return plan


def plan_json(plan: Plan) -> str:
    return json.dumps(plan.to_dict(), sort_keys=True)

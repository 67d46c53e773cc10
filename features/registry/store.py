"""The registry's persistence: two append-only tables in the offline store.

* ``registry_feature_groups``: one row per group per apply that touched it (name, version,
  fingerprint, definition JSON, status, applied_at, applied_by, apply id/sequence). The
  current state of a group is its row with the highest ``apply_seq``. Rows are never updated
  or deleted, so every version that ever served a model can be read back.
* ``registry_applies``: one row per apply (who, when, counts, the plan as JSON).

Living in the offline store (DuckDB or Snowflake) keeps the registry next to the tables it
describes and needs no extra service. Two concurrent applies could take the same
``apply_seq``; applies are an operator action (CLI or deploy job) and are not expected to race.
"""

from __future__ import annotations

import getpass
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from features.definitions.groups import FeatureGroup
from features.offline.arrow_utils import TS
from features.offline.base import OfflineStore
from features.registry.plan import AppliedGroup, Plan, make_plan, plan_json
from features.store_tx import atomic
from riskpipe.errors import UsageError

log = logging.getLogger(__name__)

GROUPS_TABLE = "registry_feature_groups"
APPLIES_TABLE = "registry_applies"

GROUPS_SCHEMA = pa.schema([
    ("name", pa.string()), ("version", pa.int64()), ("fingerprint", pa.string()), ("definition_hash", pa.string()),
    ("kind", pa.string()), ("schedule", pa.string()), ("entity", pa.string()), ("status", pa.string()),
    ("definition", pa.string()), ("apply_id", pa.string()), ("apply_seq", pa.int64()), ("applied_at", TS),
    ("applied_by", pa.string()),
])
APPLIES_SCHEMA = pa.schema([
    ("apply_id", pa.string()), ("apply_seq", pa.int64()), ("applied_at", TS), ("applied_by", pa.string()),
    ("added", pa.int64()), ("changed", pa.int64()), ("metadata", pa.int64()), ("removed", pa.int64()),
    ("plan", pa.string()),
])
_COUNT_COLUMNS = {"added": "add", "changed": "change", "metadata": "metadata", "removed": "remove"}


@dataclass(frozen=True)
class ApplyResult:
    apply_id: str | None  # None when there was nothing to apply
    apply_seq: int | None
    plan: Plan


def default_user() -> str:
    """Who applies: the OS user (overridable with --by for deploy jobs)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


class Registry:
    """Versioned feature-group registry on an offline store."""

    def __init__(self, store: OfflineStore) -> None:
        self.store = store

    def _rows(self) -> list[AppliedGroup]:
        if not self.store.table_exists(GROUPS_TABLE):
            return []
        cols = ", ".join(GROUPS_SCHEMA.names)
        table = self.store.query(f"SELECT {cols} FROM {GROUPS_TABLE} ORDER BY apply_seq, name")
        fields = AppliedGroup.__dataclass_fields__
        return [AppliedGroup(**{k: v for k, v in row.items() if k in fields}) for row in table.to_pylist()]

    def history(self, name: str | None = None) -> list[AppliedGroup]:
        """Every recorded row (of one group, or all), oldest first."""
        return [r for r in self._rows() if name is None or r.name == name]

    def current(self) -> dict[str, AppliedGroup]:
        """Newest row per group (including groups whose newest row says ``removed``)."""
        out: dict[str, AppliedGroup] = {}
        for row in self._rows():  # ordered by apply_seq, so later rows win
            out[row.name] = row
        return out

    def active(self) -> dict[str, AppliedGroup]:
        return {n: r for n, r in self.current().items() if r.status == "active"}

    def applies(self) -> list[dict[str, Any]]:
        if not self.store.table_exists(APPLIES_TABLE):
            return []
        return self.store.query(f"SELECT * FROM {APPLIES_TABLE} ORDER BY apply_seq").to_pylist()

    def plan(self, groups: Sequence[FeatureGroup]) -> Plan:
        rows = self._rows()
        current = {r.name: r for r in rows}
        history = {(r.name, r.version): r.fingerprint for r in rows}
        return make_plan(groups, current, history)

    def apply(self, groups: Sequence[FeatureGroup], applied_by: str | None = None) -> ApplyResult:
        """Record the plan's changes; refuses (UsageError) when the plan has errors."""
        plan = self.plan(groups)
        if plan.errors:
            raise UsageError("registry apply refused: " + "; ".join(plan.errors))
        if not plan.has_changes:
            return ApplyResult(None, None, plan)
        applied_by = applied_by or default_user()
        applied_at = datetime.now(UTC).replace(tzinfo=None)
        apply_id = uuid.uuid4().hex
        seq = 1 + max((a["apply_seq"] for a in self.applies()), default=0)
        current = self.current()
        rows = []
        for change in plan.pending:
            if change.group is not None:
                group = change.group
                row = {"name": group.name, "version": group.version, "fingerprint": group.fingerprint(),
                       "definition_hash": group.definition_hash(), "kind": group.kind, "schedule": group.schedule,
                       "entity": group.entity.name, "status": "active", "definition": group.model_dump_json()}
            else:  # removal: repeat the last definition, marked removed
                old = current[change.name]
                row = {"name": old.name, "version": old.version, "fingerprint": old.fingerprint,
                       "definition_hash": old.definition_hash, "kind": old.group().kind,
                       "schedule": old.group().schedule, "entity": old.group().entity.name, "status": "removed",
                       "definition": old.definition}
            rows.append({**row, "apply_id": apply_id, "apply_seq": seq, "applied_at": applied_at,
                         "applied_by": applied_by})
        counts = plan.counts()
        summary = {"apply_id": apply_id, "apply_seq": seq, "applied_at": applied_at, "applied_by": applied_by,
                   **{col: counts[action] for col, action in _COUNT_COLUMNS.items()}, "plan": plan_json(plan)}
        self.store.create_table(GROUPS_TABLE, GROUPS_SCHEMA)
        self.store.create_table(APPLIES_TABLE, APPLIES_SCHEMA)
        with atomic(self.store):
            self.store.append(GROUPS_TABLE, pa.Table.from_pylist(rows, schema=GROUPS_SCHEMA))
            self.store.append(APPLIES_TABLE, pa.Table.from_pylist([summary], schema=APPLIES_SCHEMA))
        log.info("registry applied", extra={"apply_id": apply_id, "apply_seq": seq, **counts})
        return ApplyResult(apply_id, seq, plan)

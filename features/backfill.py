"""Backfill: recompute feature groups over a date range, one day per task, idempotently.

The Airflow backfill DAG (``dags/backfill.py``) is a form in the UI; this module is what it
runs. A request names feature groups, an inclusive date range and ``dry_run``; with
``include_plan`` it also picks up every group the registry plan marks as needing a backfill
(a new group or a new definition version) and, once the days are done, records that plan
(``Registry.apply``): a version is only registered after its history table is filled, so
training never sees a registered-but-empty version.

Each day is ``compute_group(store, group, day, day + 1)``: the batch engine deletes the day's
rows and rewrites them in one transaction (DuckDB), so running the same backfill twice
leaves identical feature values (``created_at`` records when a row was materialized and is
the only column that changes).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from datetime import date, datetime, time, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from features.batch.engine import compute_group, compute_range
from features.definitions.catalog import FEATURE_GROUPS, get_group
from features.definitions.groups import FeatureGroup
from features.offline.base import OfflineStore
from features.registry import Registry
from riskpipe.errors import UsageError

log = logging.getLogger(__name__)

MAX_DAYS = 400
REGISTRY_EVENTS_TOPIC = "registry.events"  # registry and backfill events, for whoever retrains or audits


def group_names(groups: Sequence[FeatureGroup] = FEATURE_GROUPS) -> list[str]:
    """The names offered in the UI form (built from the catalog when the DAG file is parsed)."""
    return [g.name for g in groups]


class BackfillRequest(BaseModel):
    """The DAG run's conf, validated: errors name the field the user has to fix."""

    model_config = ConfigDict(extra="forbid")

    groups: list[str] = Field(default_factory=list)
    start: date
    end: date
    dry_run: bool = False
    include_plan: bool = False

    @field_validator("groups")
    @classmethod
    def _known_groups(cls, value: list[str]) -> list[str]:
        known = set(group_names())
        unknown = [g for g in value if g not in known]
        if unknown:
            raise ValueError(f"unknown feature group(s) {unknown}; known: {', '.join(sorted(known))}")
        return list(dict.fromkeys(value))  # keep order, drop repeats

    @model_validator(mode="after")
    def _range(self) -> BackfillRequest:
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        if (self.end - self.start).days + 1 > MAX_DAYS:
            raise ValueError(f"range covers more than {MAX_DAYS} days; split it")
        if not self.groups and not self.include_plan:
            raise ValueError("choose at least one feature group, or include_plan")
        return self


def parse_request(conf: Mapping[str, Any]) -> BackfillRequest:
    """Validate the run conf; a ``UsageError`` names the offending field (shown in the task log)."""
    try:
        return BackfillRequest.model_validate(dict(conf))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "conf"
        raise UsageError(f"backfill conf: field {where!r}: {first['msg']}") from exc


def plan_backfill_groups(store: OfflineStore, groups: Sequence[FeatureGroup] = FEATURE_GROUPS) -> list[str]:
    """Groups the registry plan says need a backfill (added, or a new version); errors block it."""
    plan = Registry(store).plan(list(groups))
    if plan.errors:
        raise UsageError("registry plan has errors, fix the definitions first: " + "; ".join(plan.errors))
    return [c.name for c in plan.pending if c.backfill]


def resolve_groups(request: BackfillRequest, store: OfflineStore | None = None) -> list[str]:
    """The groups to backfill: the chosen ones, plus the plan's when ``include_plan``."""
    names = list(request.groups)
    if request.include_plan:
        if store is None:
            raise UsageError("include_plan needs the offline store (the registry lives there)")
        names += [n for n in plan_backfill_groups(store) if n not in names]
    return names


def day_slices(start: date, end: date) -> list[str]:
    """ISO days from ``start`` to ``end`` inclusive: one mapped task each."""
    return [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


def day_bounds(day: str) -> tuple[datetime, datetime]:
    """``[day 00:00, next day 00:00)`` in naive UTC."""
    try:
        first = datetime.combine(date.fromisoformat(day), time())
    except ValueError as exc:
        raise UsageError(f"backfill day {day!r} is not an ISO date (YYYY-MM-DD)") from exc
    return first, first + timedelta(days=1)


def backfill_day(store: OfflineStore, names: Sequence[str], day: str, dry_run: bool = False) -> list[dict[str, Any]]:
    """Recompute every group in ``names`` for one day; with ``dry_run``, count the rows without writing."""
    start, end = day_bounds(day)
    results = []
    for name in names:
        try:
            group = get_group(name)
        except KeyError as exc:
            raise UsageError(str(exc.args[0])) from exc
        rows = compute_range(store, group, start, end).num_rows if dry_run else compute_group(store, group, start, end)
        results.append({"group": name, "version": group.version, "table": group.table_name, "day": day,
                        "rows": rows, "dry_run": dry_run})
        log.info("backfilled day", extra=results[-1])
    return results


def summarize(day_results: Sequence[Sequence[Mapping[str, Any]]]) -> dict[str, Any]:
    """Rows per group over all days (the run's result, shown in the UI and published)."""
    per_group: dict[str, dict[str, Any]] = {}
    for result in (r for day in day_results for r in day):
        entry = per_group.setdefault(result["group"], {"group": result["group"], "version": result["version"],
                                                       "table": result["table"], "days": 0, "rows": 0,
                                                       "dry_run": result["dry_run"]})
        entry["days"] += 1
        entry["rows"] += result["rows"]
    return {"groups": sorted(per_group.values(), key=lambda e: e["group"]),
            "days": len(day_results), "rows": sum(e["rows"] for e in per_group.values())}


def apply_plan(store: OfflineStore, applied_by: str = "airflow-backfill") -> dict[str, Any]:
    """Record the registry plan after its backfill (code definitions -> registry rows)."""
    result = Registry(store).apply(list(FEATURE_GROUPS), applied_by)
    return {"apply_id": result.apply_id, "apply_seq": result.apply_seq, **result.plan.to_dict()}


def backfill_events(summary: Mapping[str, Any], request: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(key, value) messages for the Kafka provider's ``ProduceToTopicOperator``: one per group."""
    for entry in summary.get("groups", []):
        yield entry["group"], json.dumps({
            "event": "feature_group_backfilled", "group": entry["group"], "version": entry["version"],
            "start": str(request.get("start")), "end": str(request.get("end")), "rows": entry["rows"],
            "dry_run": entry["dry_run"],
        })

"""`riskpipe features plan | apply | list | describe NAME`: the registry from the command line.

Definitions are read from code (``--definitions module:attribute``, the project catalog by
default); the registry lives in the configured offline store. Every failure a user can fix
(bad definition, unbumped version, unknown group) is a one-line ``UsageError``.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from pydantic import ValidationError

from features.definitions.groups import FeatureGroup, WindowedFeatureGroup, window_label
from features.registry import Registry
from riskpipe.errors import UsageError
from riskpipe.settings import get_settings

DEFAULT_DEFINITIONS = "features.definitions.catalog:FEATURE_GROUPS"

features_app = typer.Typer(help="Feature registry: plan, apply, list and describe feature groups.",
                           no_args_is_help=True)

DefinitionsOpt = typer.Option(DEFAULT_DEFINITIONS, "--definitions", "-d",
                              help="Where the groups are defined, as module:attribute (a sequence of groups).")
JsonOpt = typer.Option(False, "--json", help="Print JSON instead of text.")


def load_definitions(spec: str) -> list[FeatureGroup]:
    """Import ``module:attribute`` and check it holds feature groups; errors name the spec."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise UsageError(f"--definitions {spec!r} must look like 'package.module:ATTRIBUTE'")
    try:
        module = importlib.import_module(module_name)
    except ValidationError as exc:  # a definition in that module is invalid: show the first reason
        first = exc.errors()[0]
        raise UsageError(f"invalid feature definition in {module_name}: {exc.title}: {first['msg']}") from exc
    except ImportError as exc:
        raise UsageError(f"--definitions {spec!r}: cannot import {module_name!r}: {exc}") from exc
    groups = getattr(module, attr, None)
    if groups is None:
        raise UsageError(f"--definitions {spec!r}: module {module_name!r} has no attribute {attr!r}")
    groups = list(groups.values()) if isinstance(groups, dict) else list(groups)
    bad = [type(g).__name__ for g in groups if not isinstance(g, FeatureGroup)]
    if bad:
        raise UsageError(f"--definitions {spec!r}: expected feature groups, found {', '.join(sorted(set(bad)))}")
    return groups


@contextmanager
def _registry() -> Iterator[Registry]:
    from features.offline import get_offline_store

    store = get_offline_store(get_settings())
    try:
        yield Registry(store)
    finally:
        store.close()


def _echo_json(value: object) -> None:
    typer.echo(json.dumps(value, indent=2, default=str))


@features_app.command()
def plan(definitions: str = DefinitionsOpt, as_json: bool = JsonOpt) -> None:
    """Show what `apply` would record: added, changed, removed groups, version bumps, backfills."""
    groups = load_definitions(definitions)
    with _registry() as registry:
        result = registry.plan(groups)
    if as_json:
        _echo_json(result.to_dict())
    else:
        typer.echo(result.render())
    if result.errors:
        raise UsageError(f"plan has {len(result.errors)} error(s): {result.errors[0]}")


@features_app.command()
def apply(definitions: str = DefinitionsOpt,
          applied_by: str = typer.Option(None, "--by", help="Recorded as applied_by (default: the OS user)."),
          as_json: bool = JsonOpt) -> None:
    """Record the definitions in the registry (append-only; an unbumped changed group is refused)."""
    groups = load_definitions(definitions)
    with _registry() as registry:
        result = registry.apply(groups, applied_by)
    if as_json:
        _echo_json({"apply_id": result.apply_id, "apply_seq": result.apply_seq, **result.plan.to_dict()})
        return
    typer.echo(result.plan.render())
    if result.apply_id is None:
        typer.echo("Nothing to apply: the registry matches the definitions.")
    else:
        backfills = [c.name for c in result.plan.pending if c.backfill]
        typer.echo(f"Applied #{result.apply_seq} ({result.apply_id}).")
        if backfills:
            typer.echo(f"Needs backfill: {', '.join(backfills)}")


@features_app.command("list")
def list_groups(definitions: str = DefinitionsOpt, as_json: bool = JsonOpt) -> None:
    """Groups in code with their applied version, and groups only the registry still knows."""
    groups = load_definitions(definitions)
    with _registry() as registry:
        current = registry.current()
    rows = []
    for g in groups:
        applied = current.get(g.name)
        if applied is None or applied.status == "removed":
            state = "not applied"
        elif applied.version != g.version or applied.definition_hash != g.definition_hash():
            state = "changed"
        else:
            state = "applied"
        rows.append({"name": g.name, "version": g.version, "applied_version": applied.version if applied else None,
                     "state": state, "schedule": g.schedule, "entity": g.entity.name, "features": len(g.features)})
    names = {g.name for g in groups}
    for name, applied in sorted(current.items()):
        if name not in names and applied.status == "active":
            rows.append({"name": name, "version": None, "applied_version": applied.version,
                         "state": "not in code", "schedule": applied.group().schedule,
                         "entity": applied.group().entity.name, "features": len(applied.group().features)})
    if as_json:
        _echo_json(rows)
        return
    typer.echo(f"{'NAME':<28} {'VER':>4} {'APPLIED':>7}  {'STATE':<12} {'SCHEDULE':<8} {'ENTITY':<15} FEATURES")
    for r in rows:
        ver = "" if r["version"] is None else r["version"]
        app = "" if r["applied_version"] is None else r["applied_version"]
        typer.echo(f"{r['name']:<28} {ver:>4} {app:>7}  {r['state']:<12} {r['schedule']:<8} "
                   f"{r['entity']:<15} {r['features']}")


def _describe_lines(group: FeatureGroup) -> list[str]:
    lines = [
        f"{group.name} v{group.version}  ({group.kind}, schedule={group.schedule})",
        f"  description: {group.description}",
        f"  entity: {group.entity.name} (join key {group.entity.join_key})   ttl: {window_label(group.ttl)}",
        f"  owner: {group.owner}   tags: {', '.join(group.tags) or '-'}",
        f"  offline table: {group.table_name}   fingerprint: {group.fingerprint()[:16]}",
    ]
    if isinstance(group, WindowedFeatureGroup):
        lines.append(f"  source: {group.source.name} (topic {group.source.topic}, table {group.source.table})")
        for flag in group.source.first_seen:
            if flag.name in group.used_first_seen():
                lines.append(f"    derived {flag.name}: first seen by ({', '.join(flag.keys)}) "
                             f"within {window_label(flag.lookback)}")
        lines.append("  features:")
        for wf in group.windowed_features():
            agg = wf.aggregation
            what = f"{agg.function}({agg.column or '*'}) over {window_label(wf.window)}"
            where = " where " + " and ".join(f.describe() for f in agg.where) if agg.where else ""
            lines.append(f"    {wf.feature.name:<36} {wf.feature.dtype:<8} {what}{where}")
    else:
        lines.append(f"  lookback: {window_label(group.lookback)}")
        lines.append("  features:")
        lines += [f"    {f.name:<36} {f.dtype}" for f in group.features]
        lines.append("  sql:")
        lines += [f"    {line.strip()}" for line in group.sql.strip().splitlines()]
    return lines


@features_app.command()
def describe(name: str = typer.Argument(..., help="Feature group name."),
             definitions: str = DefinitionsOpt, as_json: bool = JsonOpt) -> None:
    """One group: its definition (code, else the registry's last) and its registry history."""
    groups = {g.name: g for g in load_definitions(definitions)}
    with _registry() as registry:
        history = registry.history(name)
    if name in groups:
        group = groups[name]
    elif history:
        group = history[-1].group()
    else:
        raise UsageError(f"unknown feature group {name!r}; known: {', '.join(sorted(groups))}")
    hist = [{"version": h.version, "status": h.status, "fingerprint": h.fingerprint[:16], "apply_seq": h.apply_seq,
             "applied_at": h.applied_at, "applied_by": h.applied_by} for h in history]
    if as_json:
        _echo_json({"definition": json.loads(group.model_dump_json()), "fingerprint": group.fingerprint(),
                    "history": hist})
        return
    lines = _describe_lines(group)
    lines.append("  registry history:" if hist else "  registry history: never applied")
    lines += [f"    #{h['apply_seq']} v{h['version']} {h['status']:<8} {h['applied_at']} by {h['applied_by']}"
              for h in hist]
    typer.echo("\n".join(lines))

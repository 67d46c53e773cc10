"""`riskpipe up | down | status | logs`: the local stack from the command line."""

from __future__ import annotations

import json
import sys

import typer
from rich.console import Console
from rich.table import Table

from riskpipe.settings import get_settings
from riskpipe.stack import supervisor

# Piped output (logs, CI) gets a wide table instead of rich's 80-column default, so addresses stay whole.
console = Console(width=None if sys.stdout.isatty() else 160)


def _fmt_uptime(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def print_status(rows: list[supervisor.ServiceStatus]) -> None:
    table = Table(title="riskpipe local stack")
    for col in ("service", "pid", "address", "healthy", "uptime", "progress"):
        table.add_column(col, overflow="fold")
    for r in rows:
        health = "[green]yes[/]" if r.healthy else ("[red]no[/]" if r.running else "[dim]stopped[/]")
        table.add_row(r.name, str(r.pid or "-"), r.address, health, _fmt_uptime(r.uptime_s), r.progress or "")
    console.print(table)
    for r in rows:
        if r.credentials:
            console.print(f"{r.name} login: {r.credentials}  ({r.address})")


def up(service: list[str] = typer.Argument(None, help="Services to start (default: all, with dependencies).")) -> None:
    """Start the local stack (broker, Redis, offline store, Airflow, ...) and wait until healthy."""
    settings = get_settings()
    try:
        rows = supervisor.up(settings, service or None, report=lambda m: console.print(f"[bold]up[/] {m}"))
    except supervisor.StackError as exc:
        console.print(f"[red]riskpipe up failed:[/] {exc}", highlight=False)
        raise typer.Exit(1) from exc
    print_status(rows)
    if not service:  # the whole stack: the main job ran, say where everything is
        from riskpipe.pipeline import summary_lines

        console.print("\n[bold]riskpipe is up[/]", highlight=False)
        for line in summary_lines(settings):
            console.print(line, highlight=False, soft_wrap=True)


def down() -> None:
    """Stop every service of the local stack (by process group; nothing is left behind)."""
    supervisor.down(get_settings(), report=lambda m: console.print(f"[bold]down[/] {m}"))


def status(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Show each service: pid, address, health, uptime, and the Airflow login."""
    rows = supervisor.status(get_settings())
    if as_json:
        typer.echo(json.dumps([r.__dict__ for r in rows], indent=2))
        return
    print_status(rows)
    if not any(r.healthy for r in rows if r.kind == "process"):
        raise typer.Exit(3)


def logs(
    service: str = typer.Argument(..., help="Service name, as in `riskpipe status`."),
    lines: int = typer.Option(50, "-n", "--lines", min=1),
    follow: bool = typer.Option(False, "-f", "--follow"),
) -> None:
    """Print (and optionally follow) a service's log."""
    supervisor.logs(get_settings(), service, lines, follow)


def mount(app: typer.Typer) -> None:
    for fn in (up, down, status, logs):
        app.command()(fn)

"""The `riskpipe` command line: one entry point, one sub-app per layer.

Each layer owns its commands in its own module and is mounted here, so this file stays
a table of contents. Errors a user can fix are raised as ``UsageError`` and printed as
one line, never as a traceback.
"""

from __future__ import annotations

import json
import sys

import typer
from pydantic import ValidationError
from typer.exceptions import TyperException

from events.cli import replay, simulate
from features.cli import features_app
from monitoring.cli import monitor_app
from riskpipe.demo import demo
from riskpipe.errors import UsageError
from riskpipe.settings import get_settings
from riskpipe.stack import cli as stack_cli
from streaming.cli import stream_app
from training.cli import models_app, train

app = typer.Typer(help="riskpipe: real-time fraud-detection ML pipeline.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)


@app.callback()
def _root() -> None:
    """riskpipe: real-time fraud-detection ML pipeline (embedded defaults; see `riskpipe config`)."""


@app.command()
def config(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """Print the effective settings (environment RISKPIPE_* over defaults), secrets masked."""
    values = get_settings().masked()
    if as_json:
        typer.echo(json.dumps(values, indent=2, default=str))
        return
    width = max(map(len, values))
    for name, value in values.items():
        typer.echo(f"{name:<{width}}  {'' if value is None else value}")


stack_cli.mount(app)
app.add_typer(features_app, name="features")
app.command("train")(train)
app.add_typer(models_app, name="models")
app.command("simulate")(simulate)
app.command("replay")(replay)
app.add_typer(stream_app, name="stream")
app.command("demo")(demo)
app.add_typer(monitor_app, name="monitor")


def main() -> None:
    """Console-script entry: turn known user errors into one line and exit code 2."""
    try:
        rc = app(standalone_mode=False)
    except (UsageError, TyperException) as exc:
        message = exc.format_message() if isinstance(exc, TyperException) else str(exc)
        typer.echo(f"riskpipe: error: {message} (see `riskpipe --help`)", err=True)
        sys.exit(2)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        typer.echo(f"riskpipe: error: setting {field!r}: {first['msg']} (check RISKPIPE_{field.upper()})",
                   err=True)
        sys.exit(2)
    except typer.Abort:
        typer.echo("riskpipe: aborted", err=True)
        sys.exit(130)
    sys.exit(rc if isinstance(rc, int) else 0)

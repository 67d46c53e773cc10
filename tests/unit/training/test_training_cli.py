"""CLI errors a user can fix are one line (UsageError), and an empty store says what to do."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from riskpipe.cli import app
from riskpipe.errors import UsageError
from riskpipe.settings import get_settings


@pytest.fixture
def cli_env(tmp_path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("RISKPIPE_DATA_DIR", str(tmp_path / "riskpipe"))
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def test_empty_model_store(cli_env: CliRunner) -> None:
    result = cli_env.invoke(app, ["models", "list"])
    assert result.exit_code == 0 and "no models yet" in result.output


@pytest.mark.parametrize(("args", "message"), [
    (["models", "rollback"], "nothing to roll back"),
    (["models", "promote", "fraud_xgb:nope"], "not in the model store"),
    (["train", "--start", "2024-03-05", "--end", "2024-03-01"], "must be before end"),
    (["train", "--start", "yesterday"], "not an ISO date"),
    (["train", "--start", "2024-03-01", "--end", "2024-03-09", "--device", "tpu"], "device"),
    (["train", "--start", "2024-03-01", "--end", "2024-03-09", "--groups", "nope"], "unknown feature group"),
])
def test_usage_errors_name_the_problem(cli_env: CliRunner, args: list[str], message: str) -> None:
    result = cli_env.invoke(app, args, standalone_mode=False)
    assert isinstance(result.exception, UsageError), result.output
    assert message in str(result.exception)

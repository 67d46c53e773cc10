"""`riskpipe simulate` / `riskpipe replay`: documented options, one-line errors, a real history run."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from events.cli import replay, simulate
from riskpipe import cli
from riskpipe.settings import get_settings


def _run(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["riskpipe", *args])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("RISKPIPE_DATA_DIR", str(tmp_path / "riskpipe"))
    get_settings.cache_clear()
    yield tmp_path / "riskpipe"
    get_settings.cache_clear()


@pytest.mark.parametrize(("command", "function"), [("simulate", simulate), ("replay", replay)])
def test_help_documents_every_option(monkeypatch, capsys, command, function) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    code, out, _ = _run(monkeypatch, capsys, command, "--help")
    assert code == 0
    import inspect

    for param in inspect.signature(function).parameters.values():
        option = param.default
        names = getattr(option, "param_decls", None) or [f"--{param.name.replace('_', '-')}"]
        if type(option).__name__ == "ArgumentInfo":
            assert "file" in out.lower() and option.help
            continue
        assert names[0].split("/")[0] in out, names
        assert option.help, f"{names[0]} has no help text"


@pytest.mark.parametrize(("args", "message"), [
    (["simulate"], "choose exactly one mode"),
    (["simulate", "--history", "1", "--live", "5"], "choose exactly one mode"),
    (["simulate", "--history", "1", "--accounts", "3"], "--accounts"),
    (["simulate", "--history", "1", "--fraud-rate", "0.9"], "--fraud-rate"),
    (["simulate", "--history", "1", "--regimes", "9"], "--regimes must be between 1 and 3"),
    (["simulate", "--history", "1", "--label-never-rate", "2"], "--label-never-rate"),
    (["simulate", "--history", "1", "--start", "last tuesday"], "--start 'last tuesday'"),
    (["simulate", "--history", "1", "--regime-file", "/nonexistent.json"], "--regime-file"),
    (["replay", "/nonexistent.csv"], "does not exist"),
])
def test_bad_options_are_one_line_errors(monkeypatch, capsys, data_dir, args, message) -> None:
    code, _, err = _run(monkeypatch, capsys, *args)
    assert code == 2
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err

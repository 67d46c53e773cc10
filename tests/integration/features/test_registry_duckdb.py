"""Registry plan/apply round trips on a real DuckDB file, through the API and the CLI."""

from __future__ import annotations

import json
import sys
from datetime import timedelta

import pytest
from typer.testing import CliRunner

from features.definitions import FEATURE_GROUPS, get_group
from features.offline import get_offline_store
from features.registry import APPLIES_TABLE, GROUPS_TABLE, Registry
from riskpipe.cli import app, main
from riskpipe.errors import UsageError
from riskpipe.settings import Settings, get_settings

pytestmark = pytest.mark.integration

def test_plan_apply_round_trip_keeps_every_version(settings: Settings) -> None:
    velocity = get_group("account_txn_velocity")
    groups = list(FEATURE_GROUPS)

    with get_offline_store(settings) as store:
        registry = Registry(store)
        assert registry.plan(groups).counts()["add"] == len(groups)
        first = registry.apply(groups, "alice")
        assert first.apply_seq == 1 and first.apply_id
        assert registry.apply(groups).apply_id is None  # nothing changed: nothing recorded

    changed = velocity.model_validate({**velocity.model_dump(), "ttl": timedelta(hours=48)})  # metadata only
    fewer = velocity.model_dump()["aggregations"][:-1]
    unbumped = velocity.model_validate({**velocity.model_dump(), "aggregations": fewer})
    bumped = unbumped.model_copy(update={"version": 2})

    with get_offline_store(settings) as store:  # a new connection: state survived on disk
        registry = Registry(store)
        assert set(registry.active()) == {g.name for g in groups}
        meta = registry.apply([changed, *groups[1:]], "bob")
        assert [(c.name, c.action) for c in meta.plan.pending] == [("account_txn_velocity", "metadata")]
        with pytest.raises(UsageError, match="account_txn_velocity: the computation changed but version 1"):
            registry.apply([unbumped, *groups[1:]])
        third = registry.apply([bumped, *groups[1:-1]], "carol")  # new version, and one group removed
        assert sorted((c.name, c.action, c.backfill) for c in third.plan.pending) == [
            ("account_profile_nightly", "remove", False), ("account_txn_velocity", "change", True)]

        history = registry.history("account_txn_velocity")
        assert [(h.version, h.apply_seq, h.applied_by) for h in history] == [
            (1, 1, "alice"), (1, 2, "bob"), (2, 3, "carol")]
        assert history[0].fingerprint == history[1].fingerprint != history[2].fingerprint
        assert history[-1].group() == bumped  # the stored JSON is the definition
        current = registry.current()
        assert current["account_profile_nightly"].status == "removed"
        assert "account_profile_nightly" not in registry.active()
        rows = store.query(f"SELECT count(*) AS n FROM {GROUPS_TABLE}").to_pylist()[0]["n"]
        assert rows == len(groups) + 1 + 2  # appended, never updated
        applies = store.query(f"SELECT apply_seq, applied_by, added, changed, metadata, removed FROM {APPLIES_TABLE} "
                              "ORDER BY apply_seq").to_pylist()
        assert [(a["apply_seq"], a["applied_by"], a["added"], a["changed"], a["metadata"], a["removed"])
                for a in applies] == [(1, "alice", 10, 0, 0, 0), (2, "bob", 0, 0, 1, 0), (3, "carol", 0, 1, 0, 1)]
        # going back to v1 exactly as it was applied is allowed (its table still exists)
        back = registry.plan([velocity, *groups[1:-1]])
        assert not back.errors and back.pending[0].details[0] == "back to the applied definition of v1"


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("RISKPIPE_DATA_DIR", str(settings.data_dir))
    get_settings.cache_clear()
    yield settings
    get_settings.cache_clear()


def test_cli_plan_apply_list_describe(cli_env: Settings) -> None:
    runner = CliRunner()
    plan = runner.invoke(app, ["features", "plan"])
    assert plan.exit_code == 0, plan.output
    assert "Plan: 10 to add, 0 to change, 0 metadata, 0 to remove, 0 error(s)." in plan.output

    applied = runner.invoke(app, ["features", "apply", "--by", "ci", "--json"])
    assert applied.exit_code == 0, applied.output
    body = json.loads(applied.output)
    assert body["apply_seq"] == 1 and body["counts"]["add"] == 10

    listed = json.loads(runner.invoke(app, ["features", "list", "--json"]).output)
    assert {r["name"]: (r["applied_version"], r["state"]) for r in listed}["ip_hourly"] == (1, "applied")

    described = runner.invoke(app, ["features", "describe", "account_withdrawals"])
    assert described.exit_code == 0, described.output
    assert "new_address_withdrawal_count_24h" in described.output
    assert "derived is_new_withdrawal_address: first seen by (account_id, withdrawal_address) within 90d" in \
        described.output
    assert "#1 v1 active" in described.output and "by ci" in described.output

    again = runner.invoke(app, ["features", "apply"])
    assert "Nothing to apply" in again.output


def test_cli_errors_are_one_line_with_exit_code_2(cli_env: Settings, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    for args, message in ((["describe", "nope"], "unknown feature group 'nope'"),
                          (["plan", "--definitions", "no_such_module:X"], "cannot import 'no_such_module'"),
                          (["plan", "--definitions", "features.definitions"], "must look like"),
                          (["plan", "--definitions", "features.definitions:ENTITIES"], "expected feature groups")):
        monkeypatch.setattr(sys, "argv", ["riskpipe", "features", *args])
        with pytest.raises(SystemExit) as exited:
            main()
        err = capsys.readouterr().err
        assert exited.value.code == 2, err
        assert message in err and "Traceback" not in err
        assert len(err.strip().splitlines()) == 1

"""The main job's bookkeeping: a stage is done once recorded, a failed one is retried, done ones are skipped."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from riskpipe import pipeline
from riskpipe.demo import customer, normal_payment, takeover_events
from riskpipe.settings import Settings
from riskpipe.stack import services, supervisor
from riskpipe.stack.service import Service
from serving.schemas import ScoreRequest


@pytest.fixture
def counting_stages(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Two stages that count their runs; the second fails until told otherwise."""
    calls = {"one": 0, "two": 0, "fail": 1}

    def one(_s: Settings) -> dict[str, Any]:
        calls["one"] += 1
        return {"n": calls["one"]}

    def two(_s: Settings) -> dict[str, Any]:
        calls["two"] += 1
        if calls["fail"]:
            raise RuntimeError("disk full")
        return {"n": calls["two"]}

    stages = (pipeline.Stage("one", "first", one, lambda r: f"one #{r['n']}"),
              pipeline.Stage("two", "second", two, lambda r: f"two #{r['n']}"))
    monkeypatch.setattr(pipeline, "STAGES", stages)
    monkeypatch.setattr(services, "REGISTRY", {})  # restored after the test
    services.register(services._pipeline_stage("one", ()))
    services.register(services._pipeline_stage("two", ("one",)))
    return calls


def test_done_stages_are_skipped_and_a_failed_one_is_retried(tmp_path: Path, counting_stages: dict[str, int]) -> None:
    settings = Settings(data_dir=tmp_path)
    assert pipeline.stage_address(settings, "one") == "pending"
    reports: list[str] = []
    with pytest.raises(supervisor.StackError, match="disk full"):
        supervisor.up(settings, report=reports.append)
    assert pipeline.stage_done(settings, "one") and not pipeline.stage_done(settings, "two")
    assert "one: done: one #1" in " ".join(reports)

    counting_stages["fail"] = 0
    reports.clear()
    supervisor.up(settings, report=reports.append)
    assert counting_stages == {"one": 1, "two": 2, "fail": 0}  # one was not run again
    assert reports[0].startswith("one: ready (one #1)")
    assert pipeline.stage_result(settings, "two") == {"n": 2}

    supervisor.up(settings, report=reports.append)
    assert counting_stages["two"] == 2


def test_a_slow_process_starts_alongside_services_that_do_not_need_it(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Airflow's minutes of start-up overlap with the services that do not depend on it."""
    import sys

    healthy_after = {"slow": 3}

    def slow_health(_s: Settings) -> bool:
        healthy_after["slow"] -= 1
        return healthy_after["slow"] <= 0

    monkeypatch.setattr(services, "REGISTRY", {})
    services.register(Service(name="slow", description="", address=lambda s: "slow", health=slow_health,
                              command=lambda s: [sys.executable, "-c", "import time; time.sleep(30)"]))
    services.register(Service(name="quick", description="", address=lambda s: "quick", health=lambda s: True,
                              setup=lambda s: None))
    services.register(Service(name="needs-slow", description="", address=lambda s: "n", health=lambda s: True,
                              setup=lambda s: None, depends_on=("slow",)))
    settings = Settings(data_dir=tmp_path)
    reports: list[str] = []
    try:
        supervisor.up(settings, report=reports.append)
    finally:
        supervisor.down(settings, report=lambda _m: None)
    order = [r.split(":")[0] + (" healthy" if "healthy" in r or "done" in r or "ready" in r else "") for r in reports]
    assert order.index("quick healthy") < order.index("slow healthy") < order.index("needs-slow healthy")


def test_demo_requests_are_valid_score_requests(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, pipeline_accounts=50)
    who = customer(settings, 3)
    assert who["account_id"].startswith("acct-") and who["typical_amount"] > 0
    ScoreRequest.model_validate(normal_payment(who))
    events, withdrawal = takeover_events(who, datetime.now(UTC))
    request = ScoreRequest.model_validate(withdrawal)
    assert request.device_id == events[0].device_id != who["device_id"]
    assert request.last_password_change_time == events[1].event_time
    assert request.amount > who["typical_amount"]


def test_stream_warmup_is_redone_when_the_in_memory_broker_restarted(tmp_path: Path) -> None:
    """Its topics and the Faust state die with an in-memory broker; a persistent one keeps them."""
    from riskpipe.stack.service import ServiceState

    settings = Settings(data_dir=tmp_path)
    ServiceState("broker", 123, 1000.0, "x").save(settings.run_dir)
    assert not pipeline.stream_warm(settings)
    pipeline._record(settings, "stream-warmup", {"events": 5, "broker_run": pipeline._broker_run(settings)}, 1.0)
    assert pipeline.stream_warm(settings)
    ServiceState("broker", 456, 2000.0, "x").save(settings.run_dir)  # `down` + `up`: a new, empty broker
    assert not pipeline.stream_warm(settings)

    persistent = Settings(data_dir=tmp_path / "s3", broker_storage="s3://bucket/")
    pipeline._record(persistent, "stream-warmup", {"events": 5, "broker_run": pipeline._broker_run(persistent)}, 1.0)
    ServiceState("broker", 789, 3000.0, "x").save(persistent.run_dir)
    assert pipeline.stream_warm(persistent)

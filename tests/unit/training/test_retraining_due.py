"""When a retraining run trains: scheduled runs wait for the production model to age; others always train."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from training.promotion import production_age, scheduled_run_due

WEEK = timedelta(days=6)


@pytest.mark.parametrize(("run_type", "age", "due"), [
    ("scheduled", timedelta(hours=1), False),  # `riskpipe up` just trained one; Airflow's first weekly run
    ("DagRunType.SCHEDULED", timedelta(hours=1), False),
    ("scheduled", timedelta(days=7), True),
    ("scheduled", None, True),  # no production model yet
    ("manual", timedelta(minutes=5), True),  # a person, or monitoring's TriggerDagRunOperator
    ("backfill", timedelta(minutes=5), True),
])
def test_only_a_scheduled_run_with_a_fresh_model_is_skipped(run_type, age, due) -> None:
    assert scheduled_run_due(run_type, age, WEEK) is due


def test_production_age_counts_from_the_last_pointer_move(settings) -> None:
    import json

    from training.promotion import pointer_path

    assert production_age(settings) is None
    path = pointer_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"stack": ["m:1", "m:2"], "history": [
        {"action": "promote", "tag": "m:1", "at": "2026-01-01T00:00:00+00:00"},
        {"action": "promote", "tag": "m:2", "at": "2026-01-03T00:00:00+00:00"}]}))
    assert production_age(settings, now=datetime(2026, 1, 3, 6, tzinfo=UTC)) == timedelta(hours=6)

"""Backfill form validation, day splitting, summaries and the Kafka events (pure functions)."""

from __future__ import annotations

import json
from datetime import date, datetime

import pytest

from features.backfill import backfill_events, day_bounds, day_slices, parse_request, summarize
from riskpipe.errors import UsageError


def test_valid_request_drops_repeated_groups() -> None:
    req = parse_request({"groups": ["ip_hourly", "ip_hourly"], "start": "2024-01-01", "end": "2024-01-03"})
    assert req.groups == ["ip_hourly"] and req.start == date(2024, 1, 1) and req.dry_run is False


@pytest.mark.parametrize(("conf", "field", "why"), [
    ({"groups": ["nope"], "start": "2024-01-01", "end": "2024-01-02"}, "groups", "unknown feature group"),
    ({"groups": ["ip_hourly"], "start": "2024-13-01", "end": "2024-01-02"}, "start", "date"),
    ({"groups": ["ip_hourly"], "start": "2024-01-05", "end": "2024-01-02"}, "conf", "before start"),
    ({"groups": [], "start": "2024-01-01", "end": "2024-01-02"}, "conf", "at least one feature group"),
    ({"groups": ["ip_hourly"], "start": "2024-01-01"}, "end", "Field required"),
    ({"groups": ["ip_hourly"], "start": "2024-01-01", "end": "2024-01-01", "typo": 1}, "typo", "Extra inputs"),
])
def test_bad_conf_names_the_field(conf: dict, field: str, why: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_request(conf)
    assert f"field {field!r}" in str(info.value) and why in str(info.value)


def test_days_are_inclusive_and_half_open_in_time() -> None:
    assert day_slices(date(2024, 2, 28), date(2024, 3, 1)) == ["2024-02-28", "2024-02-29", "2024-03-01"]
    assert day_bounds("2024-02-29") == (datetime(2024, 2, 29), datetime(2024, 3, 1))
    with pytest.raises(UsageError, match="not an ISO date"):
        day_bounds("29/02/2024")


def test_summary_and_events() -> None:
    day = {"group": "g", "version": 2, "table": "fg_g_v2", "rows": 5, "dry_run": False}
    summary = summarize([[{**day, "day": "2024-01-01"}], [{**day, "day": "2024-01-02", "rows": 7}]])
    assert summary == {"groups": [{"group": "g", "version": 2, "table": "fg_g_v2", "days": 2, "rows": 12,
                                   "dry_run": False}], "days": 2, "rows": 12}
    events = list(backfill_events(summary, {"start": "2024-01-01", "end": "2024-01-02"}))
    assert [k for k, _ in events] == ["g"]
    assert json.loads(events[0][1]) == {"event": "feature_group_backfilled", "group": "g", "version": 2,
                                        "start": "2024-01-01", "end": "2024-01-02", "rows": 12, "dry_run": False}

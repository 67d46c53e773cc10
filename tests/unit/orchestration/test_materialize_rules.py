"""Interval arithmetic of scheduled runs, group selection and derived validation rules (no services)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from features.batch.engine import schedule_ticks
from features.definitions.catalog import FEATURE_GROUPS, get_group
from features.materialize import batch_groups, tick_bounds
from features.validation import count_features, expectations_for, unit_features
from riskpipe.errors import UsageError


def test_batch_groups_come_from_the_catalog_schedules() -> None:
    assert [g.name for g in batch_groups("hourly")] == [g.name for g in FEATURE_GROUPS if g.schedule == "hourly"]
    assert [g.name for g in batch_groups("nightly")] == ["account_profile_nightly"]
    with pytest.raises(UsageError, match="batch schedules"):
        batch_groups("stream")


@pytest.mark.parametrize("group_name", ["ip_hourly", "account_profile_nightly"])
def test_a_run_computes_exactly_the_tick_at_its_interval_end(group_name: str) -> None:
    group = get_group(group_name)
    step = timedelta(hours=1) if group.schedule == "hourly" else timedelta(days=1)
    end = datetime(2024, 5, 2, tzinfo=UTC)
    assert schedule_ticks(group, *tick_bounds(end - step, end)) == [end.replace(tzinfo=None)]


def test_empty_interval_is_refused() -> None:
    t = datetime(2024, 1, 1)
    with pytest.raises(UsageError, match="must be before"):
        tick_bounds(t, t)


def test_rules_are_derived_from_the_definitions() -> None:
    ip = get_group("ip_hourly")
    assert count_features(ip) == ["ip_distinct_accounts_1h", "ip_login_count_1h", "ip_failed_login_count_1h",
                                  "ip_distinct_countries_1h"]
    assert unit_features(ip) == ["ip_failed_login_ratio_1h"]
    nightly = get_group("account_profile_nightly")
    assert "profile_active_days_30d" in count_features(nightly)
    assert "profile_amount_mean_30d" not in count_features(nightly)
    assert unit_features(nightly) == ["profile_p2p_share_30d"]
    velocity = get_group("account_txn_velocity")
    assert "txn_count_1h" in count_features(velocity) and "txn_amount_sum_1h" not in count_features(velocity)
    kinds = {(e.kind, e.column) for e in expectations_for(ip, datetime(2024, 1, 1), datetime(2024, 1, 2))}
    assert {("row_count", None), ("not_null", "ip"), ("not_null", "event_time"),
            ("between", "event_time"), ("between", "ip_failed_login_ratio_1h")} <= kinds

"""Mismatch counting and alert rules of the sync (pure: dicts in, counts out)."""

from __future__ import annotations

from datetime import datetime, timedelta

from features.definitions.catalog import get_group
from features.sync import compare, sync_alerts

GROUP = get_group("account_security_changes")  # TTL 30 days
NOW = datetime(2024, 6, 1)


def test_compare_counts_only_live_offline_entities() -> None:
    t = NOW - timedelta(hours=1)
    offline = {"same": (t, {"x": 1.0}), "stale": (t, {"x": 1}), "diff": (t, {"x": 1.0}), "gone": (t, {"x": 1}),
               "old": (NOW - timedelta(days=40), {"x": 1}), "nan": (t, {"x": float("nan")})}
    online = {"same": (t, {"x": 1.0 + 1e-12}), "stale": (t - timedelta(minutes=1), {"x": 1}),
              "diff": (t, {"x": 2.0}), "nan": (t, {"x": None})}
    assert compare(GROUP, online, offline, NOW) == {"offline_entities": 5, "missing_online": 1, "stale_online": 1,
                                                    "value_mismatch": 1}


def _result(**kw: object) -> dict:
    base = {"group_name": "g", "version": 1, "run_id": "r", "ttl_s": 3600, "freshness_s": 10.0,
            "mismatch_rate": 0.0}
    return {**base, **kw}


def test_alerts_for_stale_and_mismatched_groups_only() -> None:
    assert sync_alerts([_result()], 0.01) == []
    assert sync_alerts([_result(freshness_s=None)], 0.01) == []  # never materialized: nothing to compare
    stale, skew = sync_alerts([_result(freshness_s=7200.0, group_name="a"), _result(mismatch_rate=0.2,
                                                                                   group_name="b")], 0.01)
    assert (stale["alert"], stale["group"]) == ("feature_group_stale", "a")
    assert (skew["alert"], skew["group"], skew["threshold"]) == ("online_offline_mismatch", "b", 0.01)

"""The generated PIT SQL, asserted as text where no engine can run it (Snowflake)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from features.offline.pit_sql import PitGroup, duckdb_pit_sql, snowflake_pit_sql
from features.pit import plan_pit
from features.testing import stub_group
from riskpipe.errors import UsageError

TXN = stub_group("txn", "account_id", timedelta(hours=1), amount_sum="float64", txn_count="int64")
DEV = stub_group("dev", "device_id", timedelta(0), accounts="int64")


def test_snowflake_sql_uses_asof_match_condition_per_group_with_ttl_mask() -> None:
    plan, outputs = plan_pit(["txn:amount_sum", "dev:accounts"], [TXN, DEV])
    sql = snowflake_pit_sql("rp_stage_labels", plan, "event_time")

    assert "SELECT l.__rp_row,\n" in sql  # only positions + features come back, not the labels
    assert "FROM (SELECT __rp_row, account_id, device_id, event_time FROM rp_stage_labels) l" in sql
    assert (
        "ASOF JOIN (SELECT account_id, event_time, amount_sum FROM fg_txn_v1) f0\n"
        "  MATCH_CONDITION(l.event_time >= f0.event_time)\n"
        "  ON l.account_id = f0.account_id"
    ) in sql
    assert (
        "ASOF JOIN (SELECT device_id, event_time, accounts FROM fg_dev_v1) f1\n"
        "  MATCH_CONDITION(l.event_time >= f1.event_time)\n"
        "  ON l.device_id = f1.device_id"
    ) in sql
    # 1 h TTL = 3.6e9 us; the group without TTL is not masked.
    assert (
        "CASE WHEN f0.event_time >= DATEADD(microsecond, -3600000000, l.event_time) "
        "THEN f0.amount_sum END AS amount_sum"
    ) in sql
    assert "f1.accounts AS accounts" in sql
    assert "ORDER BY" not in sql  # label order is restored client-side in O(n)
    assert "LEFT" not in sql  # Snowflake's ASOF JOIN is already null-padding; LEFT is not valid there
    assert outputs == ["amount_sum", "accounts"]


def test_duckdb_sql_is_a_left_asof_join_with_inclusive_time_condition() -> None:
    plan, _ = plan_pit(["txn:txn_count"], [TXN])
    sql = duckdb_pit_sql("lbl", plan, "ts")
    assert "ASOF LEFT JOIN (SELECT account_id, event_time, txn_count FROM fg_txn_v1) f0" in sql
    assert "ON l.account_id = f0.account_id AND l.ts >= f0.event_time" in sql
    assert "f0.event_time >= l.ts - to_microseconds(3600000000)" in sql


def test_full_feature_names_prefix_group_and_resolve_collisions() -> None:
    a = stub_group("a", "account_id", x="int64")
    b = stub_group("b", "account_id", x="int64")
    with pytest.raises(UsageError, match="full_feature_names=True"):
        plan_pit(["a:x", "b:x"], [a, b])
    plan, outputs = plan_pit(["a:x", "b:x"], {"a": a, "b": b}, full_feature_names=True)
    assert outputs == ["a__x", "b__x"]
    assert [g.features for g in plan] == [(("x", "a__x"),), (("x", "b__x"),)]


@pytest.mark.parametrize(
    ("refs", "message"),
    [
        (["txn"], "must look like 'group:feature'"),
        (["txn:"], "must look like"),
        (["a:b:c"], "must look like"),
        (["nope:x"], "unknown feature group 'nope'"),
        (["txn:nope"], "has no feature 'nope'"),
        ([], "feature_refs is empty"),
    ],
)
def test_bad_feature_refs_are_usage_errors_naming_the_ref(refs: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        plan_pit(refs, [TXN])


def test_plan_groups_features_per_table_in_ref_order() -> None:
    plan, outputs = plan_pit(["txn:txn_count", "dev:accounts", "txn:amount_sum"], [TXN, DEV])
    assert plan == [
        PitGroup("fg_txn_v1", "account_id", 3_600_000_000, (("txn_count", "txn_count"), ("amount_sum", "amount_sum"))),
        PitGroup("fg_dev_v1", "device_id", None, (("accounts", "accounts"),)),
    ]
    assert outputs == ["txn_count", "accounts", "amount_sum"]


def test_group_names_that_are_not_identifiers_are_refused() -> None:
    bad = stub_group("txn; drop table x", "account_id", x="int64")
    with pytest.raises(UsageError, match="not a valid identifier"):
        plan_pit(["txn; drop table x:x"], [bad])

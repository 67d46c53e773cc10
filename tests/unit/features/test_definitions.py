"""Feature definitions: the catalog's shape, every validation rule, filters and fingerprints."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from features.definitions import (
    ACCOUNT,
    COUNTERPARTY,
    ENTITIES,
    FEATURE_GROUPS,
    LOGINS,
    TRANSACTIONS,
    Aggregation,
    Feature,
    FeatureGroup,
    Filter,
    Source,
    SqlFeatureGroup,
    WindowedFeatureGroup,
    get_group,
    parse_group,
    window_label,
)
from features.types import FeatureGroupLike

H1 = timedelta(hours=1)


def windowed(**overrides: Any) -> WindowedFeatureGroup:
    """A small valid group; each test breaks one thing."""
    spec: dict[str, Any] = {
        "name": "g", "version": 1, "entity": ACCOUNT, "ttl": H1, "description": "d", "owner": "o",
        "source": TRANSACTIONS,
        "aggregations": [Aggregation(name="n", function="count", windows=(H1,))],
    }
    spec.update(overrides)
    return WindowedFeatureGroup(**spec)


def sql_group(**overrides: Any) -> SqlFeatureGroup:
    spec: dict[str, Any] = {
        "name": "s", "version": 1, "entity": ACCOUNT, "ttl": H1, "description": "d", "owner": "o",
        "schedule": "hourly", "lookback": H1, "features": [Feature(name="x", dtype="int64")],
        "sql": "SELECT account_id, 1 AS x FROM events_transactions WHERE event_time <= $as_of",
    }
    spec.update(overrides)
    return SqlFeatureGroup(**spec)


def agg(**overrides: Any) -> Aggregation:
    spec: dict[str, Any] = {"name": "n", "function": "sum", "column": "amount", "windows": (H1,)}
    spec.update(overrides)
    return Aggregation(**spec)


# ---- the catalog ---------------------------------------------------------------------------------------


def test_catalog_is_a_real_feature_set() -> None:
    features = [f for g in FEATURE_GROUPS for f in g.features]
    assert len(FEATURE_GROUPS) >= 5
    assert len(features) >= 50
    assert len({g.name for g in FEATURE_GROUPS}) == len(FEATURE_GROUPS)
    # unique across groups, so a training frame can use plain feature names as columns
    assert len({f.name for f in features}) == len(features)
    assert {g.schedule for g in FEATURE_GROUPS} == {"stream", "hourly", "nightly"}
    assert {g.entity.name for g in FEATURE_GROUPS} == set(ENTITIES)


@pytest.mark.parametrize("group", FEATURE_GROUPS, ids=lambda g: g.name)
def test_catalog_group_honours_the_attribute_contract(group: FeatureGroup) -> None:
    assert isinstance(group, FeatureGroupLike)
    assert isinstance(group, FeatureGroup)
    assert group.version >= 1 and group.ttl > timedelta(0)
    assert group.entity.join_key == ENTITIES[group.entity.name].join_key
    assert all(f.dtype in ("int64", "float64", "string", "bool") for f in group.features)
    assert group.table_name == f"fg_{group.name}_v{group.version}"
    assert group.feature_refs()[0] == f"{group.name}:{group.features[0].name}"
    again = parse_group(group.model_dump_json())
    assert again == group and again.fingerprint() == group.fingerprint()


def test_stateful_features_are_derived_first_seen_columns() -> None:
    assert get_group("account_withdrawals").used_first_seen() == ["is_new_withdrawal_address"]
    assert get_group("counterparty_inbound").used_first_seen() == ["is_first_time_sender"]
    assert get_group("account_login_security").used_first_seen() == ["is_new_device", "is_new_ip"]
    assert get_group("account_txn_velocity").used_first_seen() == []


def test_get_group_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(KeyError, match="account_txn_velocity"):
        get_group("nope")


@pytest.mark.parametrize(("seconds", "label"), [(1, "1s"), (90, "90s"), (60, "1m"), (300, "5m"), (3600, "1h"),
                                                (86_400, "24h"), (5400, "90m"), (172_800, "2d"), (2_592_000, "30d")])
def test_window_label(seconds: int, label: str) -> None:
    assert window_label(timedelta(seconds=seconds)) == label


def test_windowed_features_expand_one_per_window_with_typed_outputs() -> None:
    g = windowed(aggregations=[
        Aggregation(name="c", function="count", windows=(H1, timedelta(minutes=5))),
        agg(name="s", function="sum"), agg(name="m", function="mean"), agg(name="mx", function="max"),
        agg(name="d", function="count_distinct", column="device_id"), agg(name="l", function="last", column="country"),
        agg(name="b", function="last", column="is_new_device"),
    ])
    assert [(f.name, f.dtype) for f in g.features] == [
        ("c_1h", "int64"), ("c_5m", "int64"), ("s_1h", "float64"), ("m_1h", "float64"), ("mx_1h", "float64"),
        ("d_1h", "int64"), ("l_1h", "string"), ("b_1h", "bool")]
    assert g.max_window == H1


def test_sources_take_their_column_types_from_the_event_contracts() -> None:
    assert TRANSACTIONS.columns["amount"] == "float64"
    assert TRANSACTIONS.columns["counterparty_id"] == "string"
    assert TRANSACTIONS.columns["event_time"] == "timestamp"
    assert LOGINS.columns["success"] == "bool"
    assert TRANSACTIONS.all_columns["is_new_device"] == "bool"
    assert TRANSACTIONS.table == "events_transactions" and TRANSACTIONS.topic == "events.transactions"


# ---- validation: each rule fails with a message naming the field ---------------------------------------


@pytest.mark.parametrize(("build", "message"), [
    (lambda: windowed(name="Bad-Name"), "name"),
    (lambda: windowed(version=0), "version"),
    (lambda: windowed(ttl=timedelta(0)), "ttl"),
    (lambda: windowed(ttl=timedelta(seconds=1.5)), "whole number of seconds"),
    (lambda: windowed(description=""), "description"),
    (lambda: windowed(owner=""), "owner"),
    (lambda: windowed(aggregations=[]), "aggregations"),
    (lambda: windowed(entity=COUNTERPARTY, source=LOGINS), "entity.join_key"),
    (lambda: windowed(aggregations=[agg(column="amont")]), r"aggregations\[0\] \(n\)\.column: 'amont'"),
    (lambda: windowed(aggregations=[agg(function="sum", column="country")]), r"\.function: sum needs a numeric"),
    (lambda: windowed(aggregations=[agg(function="last", column="event_time")]), "timestamp column"),
    (lambda: windowed(aggregations=[agg(name="n"), agg(name="n")]), "duplicate feature name 'n_1h'"),
    (lambda: windowed(aggregations=[agg(where=[Filter("nope", "==", 1.0)])]), r"where\[0\]\.field: 'nope'"),
    (lambda: windowed(aggregations=[agg(where=[Filter("amount", "==", "x")])]), r"where\[0\]\.value: 'x'"),
    (lambda: windowed(aggregations=[agg(where=[Filter("amount", "==", True)])]), r"where\[0\]\.value: True"),
    (lambda: windowed(aggregations=[agg(where=[Filter("country", "in", ["US", 3])])]), r"\.value: 3"),
    (lambda: windowed(source=LOGINS, aggregations=[agg(column=None, function="count",
                                                       where=[Filter("success", "<", True)])]), "booleans"),
    (lambda: windowed(aggregations=[agg(where=[Filter("event_time", ">", "2024")])]), "timestamp column"),
])
def test_invalid_group_names_the_field(build: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        build()


@pytest.mark.parametrize(("overrides", "message"), [
    ({"function": "count", "column": "amount"}, "count counts events and takes no column"),
    ({"function": "mean", "column": None}, "mean needs a column"),
    ({"windows": ()}, "windows"),
    ({"windows": (timedelta(days=31),)}, "outside 1 second .. 30 days"),
    ({"windows": (timedelta(milliseconds=500),)}, "whole number of seconds"),
    ({"windows": (H1, timedelta(minutes=60))}, "windows must be distinct"),
    ({"function": "median"}, "function"),
])
def test_invalid_aggregation(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        agg(**overrides)


@pytest.mark.parametrize(("args", "message"), [
    (("amount", "in", 5.0), "non-empty list"),
    (("amount", "in", []), "non-empty list"),
    (("amount", "is_null", 1.0), "takes no value"),
    (("amount", "==", None), "needs a value"),
    (("amount", ">", math.inf), "finite"),
    (("amount", "==", [1.0, 2.0]), "one value, not a list"),
    (("amount", "~", 1.0), "op"),
    (("Amount", "==", 1.0), "field"),
])
def test_invalid_filter(args: tuple[Any, ...], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Filter(*args)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"sql": "SELECT account_id, 1 AS x FROM t"}, r"sql: must use \$as_of"),
    ({"sql": "SELECT 1 AS x WHERE t <= $as_of AND t > $since"}, r"unknown placeholder\(s\) \['since'\]"),
    ({"features": []}, "features"),
    ({"features": [Feature(name="event_time", dtype="int64")]}, "'event_time' is reserved"),
    ({"features": [Feature(name="account_id", dtype="int64")]}, "'account_id' is reserved"),
    ({"schedule": "stream"}, "schedule"),
    ({"lookback": timedelta(days=400)}, "lookback"),
])
def test_invalid_sql_group(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        sql_group(**overrides)


def test_invalid_feature_dtype() -> None:
    with pytest.raises(ValidationError, match="dtype"):
        Feature(name="x", dtype="float32")


@pytest.mark.parametrize(("args", "message"), [
    (("is_new", ("account_id", "nope"), H1), "key 'nope' is not a column"),
    (("amount", ("account_id",), H1), "clashes with a column"),
    (("is_new", ("account_id",), timedelta(days=400)), "lookback must be at most"),
    (("is_new", ("account_id", "account_id"), H1), "keys must be distinct"),
])
def test_invalid_first_seen(args: tuple[Any, ...], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        TRANSACTIONS.with_first_seen(*args)


def test_source_needs_its_time_and_id_columns() -> None:
    with pytest.raises(ValidationError, match="'event_id' is missing"):
        Source(name="s", topic="t", table="t", columns={"event_time": "timestamp"})


# ---- filters: the Python semantics the oracle and the stream engine share -------------------------------


@pytest.mark.parametrize(("flt", "row", "expected"), [
    (Filter("a", "==", "x"), {"a": "x"}, True),
    (Filter("a", "==", "x"), {"a": None}, False),
    (Filter("a", "!=", "x"), {"a": None}, False),  # NULL compares false, as in SQL
    (Filter("a", "!=", "x"), {"a": "y"}, True),
    (Filter("a", "not_in", ["x"]), {"a": None}, False),
    (Filter("a", "not_in", ["x"]), {"a": "y"}, True),
    (Filter("a", "in", ["x", "y"]), {"a": "y"}, True),
    (Filter("a", "is_null"), {"a": None}, True),
    (Filter("a", "is_null"), {"a": math.nan}, True),
    (Filter("a", "not_null"), {"a": 0.0}, True),
    (Filter("a", ">=", 10), {"a": 10.0}, True),
    (Filter("a", "<", 10), {"a": 10.0}, False),
    (Filter("a", ">", 1.0), {"a": math.nan}, False),
    (Filter("a", "==", False), {"a": False}, True),
    (Filter("a", "==", False), {}, False),
])
def test_filter_matches(flt: Filter, row: dict[str, Any], expected: bool) -> None:
    assert flt.matches(row) is expected


def test_filter_keyword_and_positional_forms_are_equal() -> None:
    assert Filter("a", "in", ["x"]) == Filter(field="a", op="in", value=("x",))
    assert Filter.model_validate(Filter("a", "is_null").model_dump()) == Filter("a", "is_null")


# ---- fingerprints ----------------------------------------------------------------------------------------


def test_fingerprint_tracks_the_computation_and_definition_hash_everything_else() -> None:
    base = windowed()
    meta = base.model_copy(update={"description": "other", "owner": "x", "tags": ("t",), "ttl": 2 * H1})
    assert meta.fingerprint() == base.fingerprint()
    assert meta.definition_hash() != base.definition_hash()
    bumped = base.model_copy(update={"version": 7})
    assert bumped.fingerprint() == base.fingerprint() and bumped.definition_hash() == base.definition_hash()
    wider = windowed(aggregations=[Aggregation(name="n", function="count", windows=(2 * H1,))])
    assert wider.fingerprint() != base.fingerprint()
    filtered = windowed(aggregations=[Aggregation(name="n", function="count", windows=(H1,),
                                                  where=[Filter("txn_type", "==", "deposit")])])
    assert filtered.fingerprint() != base.fingerprint()


def test_fingerprint_ignores_unused_derived_columns_but_not_used_ones() -> None:
    base = windowed()
    extra = windowed(source=TRANSACTIONS.with_first_seen("is_new_ip", ("account_id", "ip"), H1))
    assert extra.fingerprint() == base.fingerprint()
    uses = [Aggregation(name="n", function="count", windows=(H1,), where=[Filter("is_new_device", "==", True)])]
    shorter = TRANSACTIONS.model_copy(update={"first_seen": tuple(
        f.model_copy(update={"lookback": H1}) if f.name == "is_new_device" else f for f in TRANSACTIONS.first_seen)})
    assert windowed(aggregations=uses).fingerprint() != windowed(aggregations=uses, source=shorter).fingerprint()


def test_sql_fingerprint_ignores_whitespace_only() -> None:
    base = sql_group()
    spaced = sql_group(sql=base.sql.replace(" ", "\n   "))
    assert spaced.fingerprint() == base.fingerprint()
    assert sql_group(sql=base.sql.replace("1 AS x", "2 AS x")).fingerprint() != base.fingerprint()

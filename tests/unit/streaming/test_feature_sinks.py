"""FeatureSinks' Arrow side: one typed table per group and micro-batch, unfit rows set apart with a reason,
the last row per (entity, event_time) wins, and a point any correction touched is upserted."""

from __future__ import annotations

import pyarrow as pa

from features.offline.arrow_utils import ARROW_BY_DTYPE
from riskpipe.settings import Settings
from streaming.ingest import FeatureSinks, GroupRows, merge_batches, merge_rows
from streaming.topology import stream_groups
from streaming.updates import FeatureUpdate, UpdatePack, pack_updates

GROUP = next(g for g in stream_groups(Settings()) if g.name == "account_txn_velocity")
SINKS = FeatureSinks(Settings(), [GROUP], online=None)  # type: ignore[arg-type]  # only the Arrow side is used
NAMES = [f.name for f in GROUP.features]
COUNT = next(f.name for f in GROUP.features if f.dtype == "int64")
AMOUNT = next(f.name for f in GROUP.features if f.dtype == "float64")
T1, T2 = 1_700_000_000_000_000, 1_700_000_001_000_000


def _update(key: str, t: int = T1, correction: bool = False, **features: object) -> FeatureUpdate:
    return FeatureUpdate(group=GROUP.name, version=GROUP.version, join_key="account_id", entity_key=key,
                         event_time_us=t, features=features, correction=correction)


def _pack(*updates: FeatureUpdate) -> UpdatePack:
    return pack_updates(updates)


def _rows(*updates: FeatureUpdate) -> GroupRows:
    batch, unfit = SINKS.prepare([_pack(*updates)])
    assert unfit == []
    return batch[GROUP.name]


def _counts(rows: GroupRows) -> list[tuple[str, int, int]]:
    table = rows.table
    assert table.column("account_id").to_pylist() == rows.keys, "the lists must describe the table's rows"
    return list(zip(rows.keys, [t - T1 for t in rows.times], table.column(COUNT).to_pylist(), strict=True))


def test_rows_that_do_not_fit_the_dtypes_are_split_off_and_the_table_keeps_the_declared_types() -> None:
    good = _update("a1", **{COUNT: 3, AMOUNT: 12.5})
    partial = _update("a2", **{COUNT: 1})  # a row without a value for a feature of its pack: null
    bad = _update("a3", **{COUNT: "three"})
    batch, unfit = SINKS.prepare([_pack(good, bad, partial)])
    assert [(u.entity_key, u.features[COUNT]) for u, _ in unfit] == [("a3", "three")]
    assert "do not fit the declared dtypes" in unfit[0][1]

    table = batch[GROUP.name].table
    assert table.column_names == ["account_id", "event_time", *NAMES]
    assert table.schema.field(COUNT).type == pa.int64() and table.schema.field(AMOUNT).type == pa.float64()
    assert table.column(COUNT).to_pylist() == [3, 1] and table.column(AMOUNT).to_pylist() == [12.5, None]


def test_a_feature_the_pack_does_not_carry_is_a_null_column_of_its_declared_type() -> None:
    pack = _pack(_update("a1", **{COUNT: 3}))
    assert pack.names == (COUNT,)
    table = SINKS.prepare([pack])[0][GROUP.name].table
    assert table.column_names == ["account_id", "event_time", *NAMES]
    assert {f.dtype for f in GROUP.features} - {"int64"}, "the group must declare other dtypes for this to prove much"
    for feature in GROUP.features:
        assert table.schema.field(feature.name).type == ARROW_BY_DTYPE[feature.dtype]
        assert table.column(feature.name).null_count == (0 if feature.name == COUNT else 1)


def test_the_last_row_per_point_wins_and_a_point_any_correction_touched_is_upserted() -> None:
    batch, _ = SINKS.prepare([
        _pack(_update("a", T1, **{COUNT: 1}), _update("b", T1, **{COUNT: 2}),
              _update("a", T1, correction=True, **{COUNT: 3}),  # a correction that wins
              _update("a", T2, correction=True, **{COUNT: 4})),
        _pack(_update("a", T2, **{COUNT: 6})),  # a replay of the original after its correction: still an upsert
    ])
    rows = batch[GROUP.name]
    assert _counts(rows) == [("a", 0, 3), ("b", 0, 2), ("a", T2 - T1, 6)]
    assert rows.upsert_points() == [("a", T1), ("a", T2)]


def test_micro_batches_merge_in_topic_order_without_converting_rows_again() -> None:
    first = {GROUP.name: _rows(_update("a", **{COUNT: 1}), _update("b", correction=True, **{COUNT: 2}))}
    second = {GROUP.name: _rows(_update("b", **{COUNT: 5}), _update("c", **{COUNT: 7}))}
    merged = merge_batches([first, second])[GROUP.name]
    assert _counts(merged) == [("a", 0, 1), ("b", 0, 5), ("c", 0, 7)]
    assert merged.upsert_points() == [("b", T1)]
    alone = first[GROUP.name]
    assert merge_rows([alone]).table is alone.table  # no duplicates: no copy of the table

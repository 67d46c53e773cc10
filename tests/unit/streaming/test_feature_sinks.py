"""Feature updates whose values do not fit the declared dtypes are set apart with a reason, the rest go on."""

from __future__ import annotations

import pyarrow as pa

from riskpipe.settings import Settings
from streaming.ingest import FeatureSinks
from streaming.topology import stream_groups
from streaming.updates import FeatureUpdate


def test_updates_that_do_not_fit_the_dtypes_are_split_off_and_the_table_keeps_the_declared_types() -> None:
    group = next(g for g in stream_groups(Settings()) if g.name == "account_txn_velocity")
    sinks = FeatureSinks(Settings(), [group], online=None)  # type: ignore[arg-type]  # only the Arrow side is used
    names = [f.name for f in group.features]
    count = next(f.name for f in group.features if f.dtype == "int64")
    amount = next(f.name for f in group.features if f.dtype == "float64")

    def update(key: str, **features: object) -> FeatureUpdate:
        return FeatureUpdate(group=group.name, version=group.version, join_key="account_id", entity_key=key,
                             event_time_us=1_700_000_000_000_000, features=features)

    good = update("a1", **{count: 3, amount: 12.5})
    partial = update("a2", **{count: 1})  # features it does not carry are null
    bad = update("a3", **{count: "three"})
    fit, unfit = sinks.split_unfit([good, bad, partial])
    assert fit == [good, partial]
    assert [u for u, _ in unfit] == [bad] and "do not fit the declared dtypes" in unfit[0][1]

    table = sinks.table(group, fit)
    assert table.column_names == ["account_id", "event_time", *names]
    assert table.schema.field(count).type == pa.int64() and table.schema.field(amount).type == pa.float64()
    assert table.column(count).to_pylist() == [3, 1] and table.column(amount).to_pylist() == [12.5, None]

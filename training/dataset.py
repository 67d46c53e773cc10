"""Training sets: transactions + labels known at the cutoff + point-in-time features + on-demand features.

Every transaction in the window is one example. Its label is 1 when a fraud label for its
``event_id`` is known by the cutoff (``label_time <= config.label_cutoff``); see
``TrainingConfig`` for why unknown labels count as negatives. Features come, per group:

* from the group's materialized history ``fg_<name>_v<version>`` through
  ``features.pit.get_training_frame`` (the leakage-safe PIT join, TTL honoured), or
* for a windowed group never materialized, from the batch engine's as-of computation over
  the raw events at each (entity, transaction time) point (``compute_at_points``), or
* for a SQL group never materialized, from its scheduled runs recomputed over the window
  (``compute_range``) and PIT-joined in a throwaway in-memory store, so the join is the same
  code path and the real store is not written.

Only numeric and boolean features feed the model (string features such as ``last_txn_type``
would need an encoding that serving must replicate exactly; they are left out on purpose).
On-demand features are computed by ``features.on_demand``, the functions serving imports.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.batch import compute_at_points, compute_range
from features.definitions.catalog import FEATURE_GROUPS, get_group
from features.definitions.groups import SqlFeatureGroup, WindowedFeatureGroup
from features.offline import DuckDBOfflineStore
from features.offline.base import OfflineStore
from features.on_demand import ON_DEMAND_FEATURES, compute_on_demand
from features.pit import before_own_event, get_training_frame
from features.types import FeatureGroupLike, feature_dtypes, group_table
from riskpipe.errors import UsageError
from training.config import TrainingConfig

log = logging.getLogger(__name__)

LABEL = "label"
SPLIT = "split"
SPLITS = ("train", "validation", "test")
MODEL_DTYPES = frozenset({"int64", "float64", "bool"})
REQUEST_FEATURES = ("amount",)  # request fields used as-is by the model
META_COLUMNS = ("event_id", "account_id", "event_time", "txn_type", "amount", "device_id", "ip",
                "counterparty_id", "payment_method_id", LABEL, "fraud_type", "label_time", SPLIT)

_EXAMPLES_SQL = """
SELECT t.event_id, t.account_id, t.event_time, t.txn_type, t.amount, t.device_id, t.ip,
       t.counterparty_id, t.payment_method_id,
       CASE WHEN l.event_id IS NULL THEN 0 ELSE 1 END AS label,
       l.fraud_type, l.label_time,
       (SELECT max(c.event_time) FROM events_account_changes c
         WHERE c.account_id = t.account_id AND c.change_type = 'password' AND c.event_time <= t.event_time
       ) AS last_password_change_time,
       d.first_seen AS device_first_seen_time
FROM events_transactions t
LEFT JOIN (
    SELECT event_id, fraud_type, label_time FROM labels WHERE label_time <= ?
    QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY label_time, fraud_type) = 1
) l ON l.event_id = t.event_id
LEFT JOIN (
    SELECT account_id, device_id, min(event_time) AS first_seen FROM (
        SELECT account_id, device_id, event_time FROM events_transactions
        UNION ALL
        SELECT account_id, device_id, event_time FROM events_logins
    ) s GROUP BY account_id, device_id
) d ON d.account_id = t.account_id AND d.device_id = t.device_id
WHERE t.event_time >= ? AND t.event_time < ?
ORDER BY t.event_time, t.event_id
"""
# device_first_seen: the global first sighting is never after the transaction itself (the
# transaction is a sighting), so the unconditioned min leaks nothing from the future.

REQUIRED_TABLES = ("events_transactions", "events_logins", "events_account_changes", "labels")


@dataclass
class TrainingSet:
    """The frame (meta columns + features + split) and which columns the model uses."""

    frame: pd.DataFrame
    feature_columns: list[str]
    groups: dict[str, dict[str, object]] = field(default_factory=dict)

    def part(self, split: str) -> pd.DataFrame:
        return self.frame[self.frame[SPLIT] == split]

    def fingerprint(self) -> str:
        """Hash of the frame's contents (rows in order, every column): identifies the data a model saw.

        Floats are rounded to 6 decimals first: DuckDB's parallel sums add in varying order, so the
        same data can differ in the last bits between two builds and must still hash the same.
        """
        canonical = self.frame.copy()
        floats = canonical.select_dtypes(include="floating").columns
        canonical[floats] = canonical[floats].round(6)
        hashes = pd.util.hash_pandas_object(canonical, index=False).to_numpy()
        digest = hashlib.sha256(hashes.tobytes())
        digest.update(",".join(self.frame.columns).encode())
        return digest.hexdigest()


def resolve_groups(names: Sequence[str] | None) -> list[FeatureGroupLike]:
    """Catalog groups by name (all of them by default); an unknown name is a usage error."""
    if names is None:
        return list(FEATURE_GROUPS)
    try:
        return [get_group(n) for n in names]
    except KeyError as exc:
        raise UsageError(str(exc.args[0])) from exc


def model_features(group: FeatureGroupLike) -> list[str]:
    """The group's features a tree model can use directly (numeric / boolean)."""
    return [name for name, dtype in feature_dtypes(group).items() if dtype in MODEL_DTYPES]


def load_examples(store: OfflineStore, config: TrainingConfig) -> pd.DataFrame:
    """Transactions of the window with their known label, fraud type and on-demand inputs."""
    missing = [t for t in REQUIRED_TABLES if not store.table_exists(t)]
    if missing:
        raise UsageError(f"offline store has no table(s) {missing}: load events first (riskpipe simulate / up)")
    table = store.query(_EXAMPLES_SQL, [config.label_cutoff, config.start, config.end])
    frame = table.to_pandas()
    if frame.empty:
        raise UsageError(f"no transactions with event_time in [{config.start}, {config.end}): "
                         "check --start/--end against the loaded data")
    frame[LABEL] = frame[LABEL].astype("int64")
    return frame


def _points(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    points = frame[[key, "event_time"]].dropna(subset=[key]).drop_duplicates()
    return points.rename(columns={"event_time": "as_of"})


def _join_pit(store: OfflineStore, frame: pd.DataFrame, group: FeatureGroupLike, columns: list[str]) -> pd.DataFrame:
    """Materialized history -> the shared PIT join (never drops or reorders rows)."""
    key = group.entity.join_key
    refs = [f"{group.name}:{c}" for c in columns]
    labels = frame[[key, "event_time"]]
    joined = get_training_frame(store, labels, refs, [group], time_col="event_time")
    return joined[columns]


def _join_at_points(store: OfflineStore, frame: pd.DataFrame, group: WindowedFeatureGroup,
                    columns: list[str]) -> pd.DataFrame:
    """Never materialized windowed group -> exact as-of values from the raw events."""
    key = group.entity.join_key
    values = compute_at_points(store, group, _points(frame, key)).to_pandas()
    values = values[[key, "event_time", *columns]]
    merged = frame[[key, "event_time"]].merge(values, on=[key, "event_time"], how="left", validate="many_to_one")
    merged.index = frame.index
    return merged[columns]


def _join_sql_group(store: OfflineStore, frame: pd.DataFrame, group: SqlFeatureGroup, columns: list[str],
                    config: TrainingConfig) -> pd.DataFrame:
    """Never materialized SQL group -> its runs over the window, PIT-joined in a scratch store."""
    start = config.start - (group.ttl if group.ttl > timedelta(0) else timedelta(days=1))
    rows = compute_range(store, group, start, config.end)
    scratch = DuckDBOfflineStore(":memory:")
    try:
        scratch.append_features(group, rows)
        return _join_pit(scratch, frame, group, columns)
    finally:
        scratch.close()


def join_group(store: OfflineStore, frame: pd.DataFrame, group: FeatureGroupLike,
               config: TrainingConfig) -> tuple[pd.DataFrame, str]:
    """The group's model features for every row of ``frame``, and how they were obtained."""
    columns = model_features(group)
    key = group.entity.join_key
    if key not in frame.columns:
        raise UsageError(f"feature group {group.name!r}: transactions have no join key column {key!r}")
    # what serving sees when it scores this transaction: the entity's state before the transaction itself
    lookup = pd.DataFrame({key: frame[key], "event_time": before_own_event(frame["event_time"])}, index=frame.index)
    if store.table_exists(group_table(group)):
        return _join_pit(store, lookup, group, columns), "materialized"
    if isinstance(group, WindowedFeatureGroup):
        return _join_at_points(store, lookup, group, columns), "as_of_raw_events"
    if isinstance(group, SqlFeatureGroup):
        return _join_sql_group(store, lookup, group, columns, config), "recomputed_runs"
    raise UsageError(f"feature group {group.name!r}: offline table {group_table(group)} does not exist")


def assign_split(event_time: pd.Series, config: TrainingConfig) -> pd.Series:
    """train / gap / validation / test by event time (see ``TrainingConfig`` for the layout)."""
    t = pd.to_datetime(event_time)
    split = np.select(
        [t < config.train_end, t < config.validation_start, t < config.test_start],
        ["train", "gap", "validation"],
        default="test",
    )
    return pd.Series(split, index=event_time.index, dtype=object)


def build_training_set(store: OfflineStore, config: TrainingConfig,
                       groups: Sequence[FeatureGroupLike] | None = None) -> TrainingSet:
    """The full training set of ``config``'s window (gap rows removed), ready for validation."""
    groups = list(groups) if groups is not None else resolve_groups(config.feature_groups)
    frame = load_examples(store, config)
    feature_columns: list[str] = list(REQUEST_FEATURES)
    provenance: dict[str, dict[str, object]] = {}
    parts = [frame]
    for group in groups:
        values, how = join_group(store, frame, group, config)
        clash = set(values.columns) & set(feature_columns)
        if clash:
            raise UsageError(f"feature group {group.name!r}: feature name(s) {sorted(clash)} used twice")
        parts.append(values)
        feature_columns.extend(values.columns)
        provenance[group.name] = {"version": group.version, "source": how, "features": list(values.columns)}
    frame = pd.concat(parts, axis=1)
    # An on-demand feature whose looked-up input comes from a group left out of this run is skipped.
    usable = tuple(f for f in ON_DEMAND_FEATURES if all(i in frame.columns for i in f.inputs))
    frame = pd.concat([frame, compute_on_demand(frame, usable)], axis=1)
    feature_columns.extend(f.name for f in usable)
    frame[SPLIT] = assign_split(frame["event_time"], config)
    frame = frame[frame[SPLIT] != "gap"].reset_index(drop=True)
    if config.shuffle_labels:
        rng = np.random.default_rng(config.seed)
        train = frame.index[frame[SPLIT] == "train"]
        frame.loc[train, LABEL] = rng.permutation(frame.loc[train, LABEL].to_numpy())
    keep = list(dict.fromkeys([c for c in META_COLUMNS if c in frame.columns] + feature_columns))
    frame = frame[keep]
    log.info("training set built", extra={"rows": len(frame), "positives": int(frame[LABEL].sum()),
                                          "features": len(feature_columns), "groups": sorted(provenance)})
    return TrainingSet(frame=frame, feature_columns=feature_columns, groups=provenance)


def to_parquet(training_set: TrainingSet, path: str) -> None:
    """Frame as Parquet; the column list travels in the schema metadata so the file is self-describing."""
    table = pa.Table.from_pandas(training_set.frame, preserve_index=False)
    meta = {b"riskpipe.feature_columns": json.dumps(training_set.feature_columns).encode(),
            b"riskpipe.groups": json.dumps(training_set.groups).encode()}
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **meta})
    pq.write_table(table, path)


def from_parquet(path: str) -> TrainingSet:
    """A training set written by ``to_parquet`` (what the DAG's tasks hand each other by path)."""
    table = pq.read_table(path)
    meta = table.schema.metadata or {}
    if b"riskpipe.feature_columns" not in meta:
        raise UsageError(f"{path} is not a riskpipe training set (no feature column metadata)")
    return TrainingSet(frame=table.to_pandas(), feature_columns=json.loads(meta[b"riskpipe.feature_columns"]),
                       groups=json.loads(meta[b"riskpipe.groups"]))

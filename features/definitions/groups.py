"""Feature groups: windowed aggregations over one source, or a scheduled SQL transformation.

Attribute contract other packages rely on: ``name``, ``version``, ``entity`` (``.name``,
``.join_key``), ``ttl``, ``features`` (each ``.name`` / ``.dtype`` in int64|float64|string|bool)
and ``schedule`` ("stream" | "hourly" | "nightly"). Invalid definitions raise pydantic
``ValidationError`` whose message names the offending field (``aggregations[2].column: ...``).

Two hashes support the registry: ``fingerprint()`` covers only what changes the computed
values (a change there needs a new version and a backfill); ``definition_hash()`` covers
everything except the version (owner, tags, TTL and descriptions included).
"""

from __future__ import annotations

import hashlib
import json
import re
from abc import abstractmethod
from datetime import timedelta
from string import Template
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from features.definitions.entities import Entity
from features.definitions.filters import SET_OPS, Filter
from features.definitions.names import MAX_WINDOW, MIN_WINDOW, Duration, Name, seconds
from features.definitions.sources import ColumnType, Source

FeatureDType = Literal["int64", "float64", "string", "bool"]
AggFunction = Literal["count", "sum", "mean", "min", "max", "count_distinct", "last"]
Schedule = Literal["stream", "hourly", "nightly"]

# Columns every offline feature table has besides the join key; features may not reuse them.
RESERVED_COLUMNS = frozenset({"event_time", "created_at"})
SQL_PLACEHOLDERS = frozenset({"as_of", "lookback_start"})
_NUMERIC = ("float64", "int64")
_PY_TYPES: dict[str, tuple[type, ...]] = {"string": (str,), "float64": (int, float), "int64": (int,), "bool": (bool,)}


def window_label(window: timedelta) -> str:
    """Short suffix for feature names: 30s, 5m, 1h, 24h, 7d (days only from 2 days up)."""
    total = seconds(window)
    if total % 86_400 == 0 and total >= 2 * 86_400:
        return f"{total // 86_400}d"
    if total % 3600 == 0:
        return f"{total // 3600}h"
    if total % 60 == 0:
        return f"{total // 60}m"
    return f"{total}s"


def _hash(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class Feature(BaseModel):
    """One output column of a group."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    dtype: FeatureDType
    description: str = ""


class Aggregation(BaseModel):
    """``function`` of ``column`` over each of ``windows``, on the events matching every ``where`` filter.

    Produces one feature per window, named ``<name>_<window label>`` (``txn_count_1h``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    function: AggFunction
    column: Name | None = None
    windows: tuple[Duration, ...] = Field(min_length=1)
    where: tuple[Filter, ...] = ()
    description: str = ""

    @model_validator(mode="after")
    def _shape(self) -> Self:
        if self.function == "count" and self.column is not None:
            raise ValueError(f"aggregation {self.name!r}: count counts events and takes no column")
        if self.function != "count" and self.column is None:
            raise ValueError(f"aggregation {self.name!r}: {self.function} needs a column")
        for w in self.windows:
            if not MIN_WINDOW <= w <= MAX_WINDOW:
                raise ValueError(f"aggregation {self.name!r}: window {w} is outside 1 second .. 30 days")
        if len(set(self.windows)) != len(self.windows):
            raise ValueError(f"aggregation {self.name!r}: windows must be distinct")
        return self

    def feature_name(self, window: timedelta) -> str:
        return f"{self.name}_{window_label(window)}"


class WindowedFeature(BaseModel):
    """A feature together with the aggregation and window that compute it (what engines iterate)."""

    model_config = ConfigDict(frozen=True)

    feature: Feature
    aggregation: Aggregation
    window: timedelta


class FeatureGroupBase(BaseModel):
    """Fields and helpers common to both kinds of group."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    version: int = Field(ge=1)
    entity: Entity
    ttl: Duration
    description: str = Field(min_length=1)
    owner: str = Field(min_length=1)
    tags: tuple[str, ...] = ()

    @property
    def table_name(self) -> str:
        """Offline history table of this version: ``fg_<name>_v<version>``."""
        return f"fg_{self.name}_v{self.version}"

    def feature_refs(self) -> list[str]:
        """``"<group>:<feature>"`` references, as training and serving name features."""
        return [f"{self.name}:{f.name}" for f in self.features]  # type: ignore[attr-defined]

    def _check_feature_names(self, names: list[str]) -> None:
        reserved = RESERVED_COLUMNS | {self.entity.join_key}
        seen: set[str] = set()
        for name in names:
            if name in reserved:
                raise ValueError(f"features: {name!r} is reserved (join key / event_time / created_at)")
            if name in seen:
                raise ValueError(f"features: duplicate feature name {name!r}")
            seen.add(name)

    @abstractmethod
    def _computation(self) -> dict[str, Any]:
        """What determines the computed values (and so the fingerprint); each group kind says."""

    def fingerprint(self) -> str:
        """Hash of what determines the values: a change here needs a version bump and a backfill."""
        return _hash(self._computation())

    def definition_hash(self) -> str:
        """Hash of the whole definition except the version (metadata such as owner and TTL included)."""
        return _hash(self.model_dump(mode="json", exclude={"version"}))


class WindowedFeatureGroup(FeatureGroupBase):
    """Windowed aggregations over one source; computed by the stream engine and the batch engine."""

    kind: Literal["windowed"] = "windowed"
    schedule: Literal["stream"] = "stream"
    source: Source
    aggregations: tuple[Aggregation, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        columns = self.source.all_columns
        key = self.entity.join_key
        if columns.get(key) != "string" or key not in self.source.columns:
            raise ValueError(f"entity.join_key: {key!r} is not a string column of source {self.source.name!r}")
        for i, agg in enumerate(self.aggregations):
            where = f"aggregations[{i}] ({agg.name})"
            if agg.column is not None:
                dtype = columns.get(agg.column)
                if dtype is None:
                    raise ValueError(f"{where}.column: {agg.column!r} is not a column of source {self.source.name!r}")
                _check_function_dtype(where, agg.function, agg.column, dtype)
            for j, flt in enumerate(agg.where):
                _check_filter(f"{where}.where[{j}]", flt, columns, self.source.name)
        self._check_feature_names([f.name for f in self.features])
        return self

    @property
    def features(self) -> list[Feature]:
        return [wf.feature for wf in self.windowed_features()]

    def windowed_features(self) -> list[WindowedFeature]:
        """Every (feature, aggregation, window), in declaration order."""
        columns = self.source.all_columns
        out = []
        for agg in self.aggregations:
            dtype = _output_dtype(agg.function, columns[agg.column] if agg.column else None)
            for window in agg.windows:
                feature = Feature(name=agg.feature_name(window), dtype=dtype, description=agg.description)
                out.append(WindowedFeature(feature=feature, aggregation=agg, window=window))
        return out

    @property
    def max_window(self) -> timedelta:
        return max(w for agg in self.aggregations for w in agg.windows)

    def used_first_seen(self) -> list[str]:
        """Derived first-seen columns the aggregations read (engines compute only these)."""
        used = {agg.column for agg in self.aggregations} | {f.field for a in self.aggregations for f in a.where}
        return [d.name for d in self.source.first_seen if d.name in used]

    def _computation(self) -> dict[str, Any]:
        src = self.source
        used = set(self.used_first_seen())
        return {
            "kind": self.kind,
            "entity": self.entity.join_key,
            "source": {
                "table": src.table,
                "timestamp": src.timestamp_column,
                "id": src.id_column,
                "first_seen": [d.model_dump(mode="json", exclude={"description"})
                               for d in src.first_seen if d.name in used],
            },
            "aggregations": [a.model_dump(mode="json", exclude={"description"}) for a in self.aggregations],
        }


class SqlFeatureGroup(FeatureGroupBase):
    """A SQL transformation run by the batch engine on its schedule (hourly or nightly).

    The SQL returns one row per entity with the join key and every declared feature column,
    computed from events with ``$lookback_start < event_time <= $as_of`` (both placeholders are
    rendered as timestamp literals of the run's as-of time and ``as_of - lookback``).
    """

    kind: Literal["sql"] = "sql"
    schedule: Literal["hourly", "nightly"]
    sql: str = Field(min_length=1)
    lookback: Duration
    features: list[Feature] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        placeholders = {m.group("named") or m.group("braced") for m in Template.pattern.finditer(self.sql)
                        if m.group("named") or m.group("braced")}
        unknown = placeholders - SQL_PLACEHOLDERS
        if unknown:
            raise ValueError(f"sql: unknown placeholder(s) {sorted(unknown)}; use $as_of and $lookback_start")
        if "as_of" not in placeholders:
            raise ValueError("sql: must use $as_of (the time the values describe)")
        if self.lookback > MAX_WINDOW * 12:
            raise ValueError("lookback: must be at most 360 days")
        self._check_feature_names([f.name for f in self.features])
        return self

    def _computation(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "entity": self.entity.join_key,
            "schedule": self.schedule,
            "sql": re.sub(r"\s+", " ", self.sql).strip(),
            "lookback": seconds(self.lookback),
            "features": [{"name": f.name, "dtype": f.dtype} for f in self.features],
        }


def _output_dtype(function: str, column_dtype: str | None) -> FeatureDType:
    if function in ("count", "count_distinct"):
        return "int64"
    if function == "mean":
        return "float64"
    assert column_dtype is not None
    return column_dtype  # type: ignore[return-value]  # sum/min/max/last keep the column type (checked)


def _check_function_dtype(where: str, function: str, column: str, dtype: ColumnType) -> None:
    if function in ("sum", "mean", "min", "max") and dtype not in _NUMERIC:
        raise ValueError(f"{where}.function: {function} needs a numeric column, {column!r} is {dtype}")
    if function in ("last", "count_distinct") and dtype == "timestamp":
        raise ValueError(f"{where}.function: {function} of timestamp column {column!r} is not a feature type")


def _check_filter(where: str, flt: Filter, columns: dict[str, ColumnType], source: str) -> None:
    dtype = columns.get(flt.field)
    if dtype is None:
        raise ValueError(f"{where}.field: {flt.field!r} is not a column of source {source!r}")
    if dtype == "timestamp" and flt.values:
        raise ValueError(f"{where}.value: comparisons on timestamp column {flt.field!r} are not supported")
    if dtype == "bool" and flt.op not in ("==", "!=", "is_null", "not_null", *SET_OPS):
        raise ValueError(f"{where}.op: {flt.op!r} does not apply to bool column {flt.field!r}")
    allowed = _PY_TYPES.get(dtype, ())
    for value in flt.values:
        bad_bool = isinstance(value, bool) and dtype != "bool"
        if bad_bool or not isinstance(value, allowed):
            raise ValueError(f"{where}.value: {value!r} does not fit {dtype} column {flt.field!r}")


# A plain union, so ``isinstance(obj, FeatureGroup)`` works; JSON parsing uses the "kind" discriminator.
FeatureGroup = WindowedFeatureGroup | SqlFeatureGroup
_GROUP_ADAPTER: TypeAdapter[FeatureGroup] = TypeAdapter(Annotated[FeatureGroup, Field(discriminator="kind")])


def parse_group(definition: str | dict[str, Any]) -> FeatureGroup:
    """A group from its JSON (as the registry stores it) or dict form."""
    if isinstance(definition, str):
        return _GROUP_ADAPTER.validate_json(definition)
    return _GROUP_ADAPTER.validate_python(definition)

"""Data checks on every feature batch a DAG writes (Great Expectations, ephemeral context, pandas).

A batch that is empty, has null keys, event times outside the interval it claims to describe,
or impossible values (a negative count, a ratio above 1) must stop the pipeline before it
reaches the online store and the models: the task fails with a report a human can read in
the Airflow log, not a stack of metric objects.

The expectations are derived from the definition, so a new group is checked without writing
a suite by hand:

* row count >= ``min_rows`` (a scheduled run over live traffic that produced nothing is broken);
* the join key and ``event_time`` are never null; ``event_time`` lies in the batch's interval;
* counts (``count`` / ``count_distinct`` aggregations, and SQL features whose name says
  ``count``, ``distinct`` or ``days``) are >= 0 and never null;
* ratios and shares (names containing ``ratio`` / ``share``) lie in [0, 1].

Great Expectations is imported lazily: it takes seconds to import, and DAG files and the
CLI must stay fast to parse.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa

from features.definitions.groups import FeatureGroup, WindowedFeatureGroup
from features.offline.base import naive_utc

log = logging.getLogger(__name__)

_COUNT_NAME = re.compile(r"(^|_)(count|distinct|days)(_|$)")
_UNIT_NAME = re.compile(r"(^|_)(ratio|share)(_|$)")
_GX_TYPES = {"row_count": "expect_table_row_count_to_be_between", "not_null": "expect_column_values_to_not_be_null",
             "between": "expect_column_values_to_be_between"}


class FeatureValidationError(Exception):
    """A written batch failed its checks; the message is the readable report."""

    def __init__(self, report: ValidationReport) -> None:
        super().__init__(report.render())
        self.report = report


@dataclass(frozen=True)
class Check:
    """One expectation: what was checked, on which column, and what GE observed."""

    name: str
    column: str | None
    success: bool
    detail: str = ""


@dataclass
class ValidationReport:
    group: str
    version: int
    rows: int
    checks: list[Check] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return all(c.success for c in self.checks)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.success]

    def render(self) -> str:
        """Plain text for the task log: one line per failed check, then a summary."""
        head = (f"feature group {self.group!r} v{self.version}: {len(self.failed)} of {len(self.checks)} "
                f"check(s) failed on {self.rows} row(s)")
        if self.success:
            return f"feature group {self.group!r} v{self.version}: all {len(self.checks)} checks passed " \
                   f"on {self.rows} row(s)"
        lines = [head]
        for check in self.failed:
            where = f" [{check.column}]" if check.column else ""
            lines.append(f"  FAILED {check.name}{where}: {check.detail}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"group": self.group, "version": self.version, "rows": self.rows, "success": self.success,
                "failed": [{"check": c.name, "column": c.column, "detail": c.detail} for c in self.failed]}


@dataclass(frozen=True)
class Expectation:
    """A GE-independent description of one check (so it can be listed and unit-tested cheaply)."""

    kind: str  # row_count | not_null | between
    column: str | None = None
    min_value: Any = None
    max_value: Any = None


def count_features(group: FeatureGroup) -> list[str]:
    """Features that count something: never negative, never null."""
    if isinstance(group, WindowedFeatureGroup):
        return [wf.feature.name for wf in group.windowed_features()
                if wf.aggregation.function in ("count", "count_distinct")]
    return [f.name for f in group.features if f.dtype in ("int64", "float64") and _COUNT_NAME.search(f.name)]


def unit_features(group: FeatureGroup) -> list[str]:
    """Ratios and shares: between 0 and 1."""
    return [f.name for f in group.features if f.dtype == "float64" and _UNIT_NAME.search(f.name)]


def expectations_for(group: FeatureGroup, start: datetime | None = None, end: datetime | None = None,
                     min_rows: int = 1) -> list[Expectation]:
    """The checks a batch of ``group`` describing ``[start, end)`` must pass."""
    out = [Expectation("row_count", min_value=min_rows),
           Expectation("not_null", group.entity.join_key), Expectation("not_null", "event_time")]
    if start is not None or end is not None:
        out.append(Expectation("between", "event_time",
                               naive_utc(start) if start else None, naive_utc(end) if end else None))
    for name in count_features(group):
        out += [Expectation("not_null", name), Expectation("between", name, 0, None)]
    out += [Expectation("between", name, 0, 1) for name in unit_features(group)]
    return out


def _gx_expectation(exp: Expectation) -> Any:
    import great_expectations as gx

    if exp.kind == "row_count":
        return gx.expectations.ExpectTableRowCountToBeBetween(min_value=exp.min_value)
    if exp.kind == "not_null":
        return gx.expectations.ExpectColumnValuesToNotBeNull(column=exp.column)
    return gx.expectations.ExpectColumnValuesToBeBetween(column=exp.column, min_value=exp.min_value,
                                                         max_value=exp.max_value)


def _detail(exp: Expectation, result: dict[str, Any]) -> str:
    if exp.kind == "row_count":
        return f"expected at least {exp.min_value} row(s), got {result.get('observed_value')}"
    bad = result.get("unexpected_count", "?")
    sample = result.get("partial_unexpected_list") or []
    if exp.kind == "not_null":
        return f"{bad} null value(s)"
    bounds = f"[{'-inf' if exp.min_value is None else exp.min_value}, " \
             f"{'+inf' if exp.max_value is None else exp.max_value}]"
    return f"{bad} value(s) outside {bounds}, e.g. {[str(v) for v in sample[:5]]}"


def validate_batch(group: FeatureGroup, batch: pa.Table, start: datetime | None = None,
                   end: datetime | None = None, min_rows: int = 1) -> ValidationReport:
    """Run the group's expectations on ``batch`` with an ephemeral GE context; never raises on bad data."""
    import great_expectations as gx

    expectations = expectations_for(group, start, end, min_rows)
    missing = sorted({e.column for e in expectations if e.column} - set(batch.column_names))
    report = ValidationReport(group.name, group.version, batch.num_rows)
    if missing:
        report.checks.append(Check("columns_present", None, False, f"batch has no column(s) {missing}"))
        return report
    frame = batch.to_pandas(timestamp_as_object=False)
    context = gx.get_context(mode="ephemeral")
    _quiet_progress_bars(context)
    asset = context.data_sources.add_pandas("riskpipe").add_dataframe_asset(group.name)
    definition = asset.add_batch_definition_whole_dataframe("batch")
    suite = gx.ExpectationSuite(name=f"{group.name}_v{group.version}")
    for exp in expectations:
        suite.add_expectation(_gx_expectation(exp))
    result = definition.get_batch(batch_parameters={"dataframe": frame}).validate(suite)
    by_check = {(r.expectation_config.type, r.expectation_config.kwargs.get("column")): r for r in result.results}
    for exp in expectations:
        name = _GX_TYPES[exp.kind]
        res = by_check.get((name, exp.column))
        if res is None:  # GE skipped it: report, never pass silently
            report.checks.append(Check(name, exp.column, False, "Great Expectations returned no result"))
            continue
        report.checks.append(Check(name, exp.column, bool(res.success), "" if res.success else
                                   _detail(exp, dict(res.result or {}))))
    log.info("validated feature batch", extra={"group": group.name, "rows": batch.num_rows,
                                                "failed": len(report.failed)})
    return report


def check_batch(group: FeatureGroup, batch: pa.Table, start: datetime | None = None, end: datetime | None = None,
                min_rows: int = 1) -> ValidationReport:
    """``validate_batch`` that raises ``FeatureValidationError`` (failing the task) when a check fails."""
    report = validate_batch(group, batch, start, end, min_rows)
    if not report.success:
        raise FeatureValidationError(report)
    return report


def _quiet_progress_bars(context: Any) -> None:
    """Progress bars would flood Airflow task logs with carriage-return noise."""
    try:
        from great_expectations.data_context.types.base import ProgressBarsConfig

        context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    except (ImportError, AttributeError):  # pragma: no cover - older/newer GE layouts
        pass

"""Validation gate on the training frame: a Great Expectations 1.x suite, run before any training.

A model trained on a broken frame (a feature group that stopped materializing, labels that
stopped arriving, a join that duplicated rows) still trains and still scores; only the data
says it is wrong. The suite checks schema, null rates, value ranges, label rate and split
coverage. It runs in GE's *ephemeral* context with a pandas datasource: nothing is written to
the repository. A failure raises ``DataValidationError`` whose message is a text table with
one line per failed expectation, so the CLI and the Airflow log show exactly what broke.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from typing import Any

import pandas as pd

from riskpipe.errors import UsageError
from training.config import TrainingConfig
from training.dataset import LABEL, SPLIT, SPLITS, TrainingSet

log = logging.getLogger(__name__)

# Non-negative by construction: counts, distinct counts, sums of positive amounts, ages, ratios.
_NON_NEGATIVE_PREFIXES = ("txn_", "p2p_", "card_", "high_value", "failed_", "login_", "new_", "no_2fa", "security_",
                          "password_", "twofa_", "email_", "withdrawal_", "change_", "distinct_", "pm_", "device_",
                          "inbound_", "first_time_", "ip_", "profile_", "seconds_since", "amount")
_META_NOT_NULL = ("event_id", "account_id", "event_time", LABEL, SPLIT)


class DataValidationError(UsageError):
    """The training frame failed the suite; ``str()`` is the readable report."""

    def __init__(self, report: ValidationReport) -> None:
        super().__init__(report.render())
        self.report = report


@dataclass
class CheckResult:
    expectation: str
    column: str
    success: bool
    observed: str


@dataclass
class ValidationReport:
    results: list[CheckResult]
    rows: int

    @property
    def success(self) -> bool:
        return all(r.success for r in self.results)

    @property
    def failed(self) -> list[CheckResult]:
        return [r for r in self.results if not r.success]

    def render(self) -> str:
        """Plain-text table: the failures (or a one-line pass) with what was observed."""
        if self.success:
            return f"training frame passed {len(self.results)} expectations ({self.rows} rows)"
        width = max(len(r.expectation) for r in self.failed)
        col_width = max(len(r.column) for r in self.failed)
        lines = [f"training frame failed {len(self.failed)} of {len(self.results)} expectations ({self.rows} rows):",
                 f"  {'EXPECTATION':<{width}}  {'COLUMN':<{col_width}}  OBSERVED"]
        lines += [f"  {r.expectation:<{width}}  {r.column:<{col_width}}  {r.observed}" for r in self.failed]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"success": self.success, "rows": self.rows,
                "results": [r.__dict__ for r in self.results]}


def _non_negative(column: str) -> bool:
    return column.startswith(_NON_NEGATIVE_PREFIXES)


def build_suite(training_set: TrainingSet, config: TrainingConfig) -> Any:
    """The expectation suite for this frame's columns and this run's window."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    suite = gx.ExpectationSuite(name="riskpipe_training_frame")
    frame = training_set.frame
    features = list(dict.fromkeys(training_set.feature_columns))
    required = list(dict.fromkeys([*_META_NOT_NULL, "txn_type", "amount", *features]))
    suite.add_expectation(gxe.ExpectTableColumnsToMatchSet(column_set=required, exact_match=False))
    for column in _META_NOT_NULL:
        suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column=column))
    suite.add_expectation(gxe.ExpectColumnValuesToBeUnique(column="event_id"))
    suite.add_expectation(gxe.ExpectColumnValuesToBeInSet(column=LABEL, value_set=[0, 1]))
    suite.add_expectation(gxe.ExpectColumnMeanToBeBetween(column=LABEL, min_value=config.min_label_rate,
                                                          max_value=config.max_label_rate))
    suite.add_expectation(gxe.ExpectColumnValuesToBeInSet(column=SPLIT, value_set=list(SPLITS)))
    suite.add_expectation(gxe.ExpectColumnMinToBeBetween(column="event_time", min_value=config.start))
    suite.add_expectation(gxe.ExpectColumnMaxToBeBetween(column="event_time", max_value=config.end,
                                                         strict_max=True))
    suite.add_expectation(gxe.ExpectColumnMinToBeBetween(column="amount", min_value=0, strict_min=True))
    for column in features:
        if column not in frame.columns:
            continue  # reported by the column-set expectation
        # A feature that is almost always null is a group that is not materialized or not joined.
        suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column=column, mostly=1.0 - config.max_null_rate))
        if column != "amount" and _non_negative(column) and pd.api.types.is_numeric_dtype(frame[column]) \
                and not pd.api.types.is_bool_dtype(frame[column]):
            suite.add_expectation(gxe.ExpectColumnMinToBeBetween(column=column, min_value=0))
    return suite


def _observed(result: Any) -> str:
    info = result.result or {}
    if result.exception_info and result.exception_info.get("raised_exception"):
        return f"error: {str(result.exception_info.get('exception_message'))[:120]}"
    if "details" in info and "mismatched" in info["details"]:
        return f"mismatched columns {info['details']['mismatched']}"
    if "observed_value" in info:
        return f"observed {info['observed_value']}"
    if "unexpected_percent" in info:
        sample = info.get("partial_unexpected_list") or []
        return f"{info.get('unexpected_count')} unexpected ({info['unexpected_percent']:.2f}%), e.g. {sample[:3]}"
    return "missing" if "column_to_exist" in result.expectation_config.type else "failed"


def _key(config: Any) -> str:
    kwargs = {k: v for k, v in config.kwargs.items() if k != "batch_id"}
    return f"{config.type}:{sorted(kwargs.items(), key=lambda kv: kv[0])!r}"


def _split_checks(training_set: TrainingSet) -> list[CheckResult]:
    """Each split needs both classes; GE has no per-subset expectation, so this one is plain pandas."""
    out = []
    for split in SPLITS:
        part = training_set.part(split)
        positives = int(part[LABEL].sum()) if len(part) else 0
        ok = 0 < positives < len(part)
        out.append(CheckResult("split_has_both_classes", f"{SPLIT}={split}", ok,
                               f"{positives} positives in {len(part)} rows"))
    return out


def validate_training_set(training_set: TrainingSet, config: TrainingConfig) -> ValidationReport:
    """Run the suite; returns the report (``check_training_set`` raises on failure)."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")  # no phoning home from workers
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    with contextlib.suppress(Exception):  # cosmetic only: no progress bars in worker logs
        context.variables.progress_bars = gx.data_context.types.base.ProgressBarsConfig(globally=False)
    batch = (context.data_sources.add_pandas("training")
             .add_dataframe_asset("frame")
             .add_batch_definition_whole_dataframe("whole")
             .get_batch(batch_parameters={"dataframe": training_set.frame}))
    suite = build_suite(training_set, config)
    # Fast pass without unexpected-value bookkeeping; only failures are re-run for their details.
    outcome = batch.validate(suite, result_format="BOOLEAN_ONLY")
    failed = [r.expectation_config for r in outcome.results if not r.success]
    details: dict[str, str] = {}
    if failed:
        retry = gx.ExpectationSuite(name="riskpipe_training_frame_failures")
        for cfg in failed:
            retry.add_expectation_configuration(cfg)
        for r in batch.validate(retry, result_format="SUMMARY").results:
            details[_key(r.expectation_config)] = _observed(r)
    results = [CheckResult(r.expectation_config.type, str(r.expectation_config.kwargs.get("column", "")),
                           bool(r.success), details.get(_key(r.expectation_config), "ok" if r.success else "failed"))
               for r in outcome.results]
    report = ValidationReport(results=results + _split_checks(training_set), rows=len(training_set.frame))
    log.info("training frame validated", extra={"success": report.success, "failed": len(report.failed)})
    return report


def check_training_set(training_set: TrainingSet, config: TrainingConfig) -> ValidationReport:
    """The gate: returns the report when everything passed, raises ``DataValidationError`` otherwise."""
    report = validate_training_set(training_set, config)
    if not report.success:
        raise DataValidationError(report)
    return report

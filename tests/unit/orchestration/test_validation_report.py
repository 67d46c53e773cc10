"""Great Expectations on a bad batch: every broken rule is reported, by column, in plain text."""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa
import pytest

from features.definitions.catalog import get_group
from features.validation import FeatureValidationError, check_batch, validate_batch

IP = get_group("ip_hourly")
TS = pa.timestamp("us")


def _batch(**overrides: list) -> pa.Table:
    cols = {"ip": ["1.1.1.1", "2.2.2.2"], "event_time": pa.array([datetime(2024, 1, 1, 1)] * 2, TS),
            "created_at": pa.array([datetime(2024, 1, 2)] * 2, TS), "ip_distinct_accounts_1h": [1, 2],
            "ip_login_count_1h": [3, 4], "ip_failed_login_count_1h": [0, 1],
            "ip_failed_login_ratio_1h": [0.0, 0.25], "ip_distinct_countries_1h": [1, 1]}
    cols.update(overrides)
    return pa.table(cols)


def test_good_batch_passes_and_bad_batch_fails_with_a_readable_report() -> None:
    window = (datetime(2024, 1, 1, 0, 0, 1), datetime(2024, 1, 1, 1, 0, 1))
    ok = validate_batch(IP, _batch(), *window)
    assert ok.success and len(ok.checks) > 5

    bad = _batch(ip=["1.1.1.1", None], ip_login_count_1h=[-1, 4], ip_failed_login_ratio_1h=[0.5, 1.5],
                 event_time=pa.array([datetime(2024, 1, 1, 1), datetime(2024, 1, 3)], TS))
    with pytest.raises(FeatureValidationError) as info:
        check_batch(IP, bad, *window, min_rows=3)
    text = str(info.value)
    assert text.splitlines()[0] == "feature group 'ip_hourly' v1: 5 of 13 check(s) failed on 2 row(s)"
    assert "expected at least 3 row(s), got 2" in text
    assert "[ip]: 1 null value(s)" in text
    assert "[ip_login_count_1h]: 1 value(s) outside [0, +inf]" in text
    assert "[ip_failed_login_ratio_1h]: 1 value(s) outside [0, 1]" in text
    assert "[event_time]: 1 value(s) outside" in text
    assert info.value.report.to_dict()["success"] is False


def test_missing_column_is_reported_not_raised_from_ge() -> None:
    report = validate_batch(IP, _batch().drop_columns(["ip_login_count_1h"]))
    assert not report.success and "ip_login_count_1h" in report.render()

"""Reading Evidently's per-column results and the data-quality rule, without running Evidently."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from monitoring.drift import data_quality, is_drifted, parse_value_drifts


def test_p_values_drift_below_the_threshold_distances_at_or_above_it() -> None:
    assert is_drifted("K-S p_value", 0.01, 0.05) and not is_drifted("K-S p_value", 0.2, 0.05)
    assert is_drifted("Wasserstein distance (normed)", 0.1, 0.1)
    assert not is_drifted("Jensen-Shannon distance", 0.09, 0.1)
    assert not is_drifted("Wasserstein distance (normed)", math.nan, 0.1)  # untestable is not drifted


def test_value_drift_metrics_are_parsed_and_other_metrics_ignored() -> None:
    snapshot = {"metrics": [
        {"config": {"type": "evidently:metric_v2:DriftedColumnsCount", "drift_share": 0.3},
         "value": {"count": 1.0, "share": 0.5}},
        {"config": {"type": "evidently:metric_v2:ValueDrift", "column": "a", "method": "K-S p_value",
                    "threshold": 0.05}, "value": 0.001},
        {"config": {"type": "evidently:metric_v2:ValueDrift", "column": "b",
                    "method": "Wasserstein distance (normed)", "threshold": 0.1}, "value": 0.02},
    ]}
    drifts = parse_value_drifts(snapshot)
    assert [(d.column, d.drifted) for d in drifts] == [("a", True), ("b", False)]


def test_a_feature_that_stops_arriving_is_a_data_quality_finding() -> None:
    reference = pd.DataFrame({"a": [1.0, 2.0, np.nan, 4.0], "b": [1.0] * 4})
    current = pd.DataFrame({"a": [1.0, np.nan, np.nan, 4.0], "b": [np.nan, np.nan, np.nan, 1.0]})
    got = data_quality(current, reference, ["a", "b"], max_increase=0.3)
    assert got["features_more_missing"] == ["b"]  # a: 0.25 -> 0.5 is within 0.3; b: 0 -> 0.75 is not
    assert got["missing_share"]["b"] == 0.75 and got["reference_missing_share"]["a"] == 0.25

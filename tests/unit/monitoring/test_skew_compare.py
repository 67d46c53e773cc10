"""Skew counting rules: mismatch only when both sides have a value; missing sides are counted apart."""

from __future__ import annotations

import math

import numpy as np
import pytest

from monitoring.skew import compare_values, features_by_group

NAN = math.nan


def test_only_values_present_on_both_sides_can_mismatch() -> None:
    served = np.array([1.0, 2.0, 3.0, NAN, 5.0, NAN])
    offline = np.array([1.0, 2.5, NAN, 4.0, 5.0 + 1e-12, NAN])
    got = compare_values(served, offline)
    assert got["compared"] == 3 and got["mismatches"] == 1
    assert got["mismatch_rate"] == pytest.approx(1 / 3)
    assert got["mean_abs_diff"] == pytest.approx(0.5 / 3)
    assert (got["missing_offline"], got["missing_online"], got["both_missing"]) == (1, 1, 1)


def test_relative_tolerance_absorbs_float_noise_of_large_sums() -> None:
    got = compare_values(np.array([1_000_000.0]), np.array([1_000_000.0 * (1 + 1e-9)]))
    assert got["mismatches"] == 0


def test_nothing_comparable_is_a_zero_rate_not_a_division_error() -> None:
    got = compare_values(np.array([NAN, 1.0]), np.array([NAN, NAN]))
    assert got["compared"] == 0 and got["mismatch_rate"] == 0.0 and got["missing_offline"] == 1


def test_model_columns_are_grouped_by_the_catalog_group_that_computes_them() -> None:
    groups, other = features_by_group(["amount", "txn_count_1h", "profile_amount_mean_30d", "amount_to_mean_30d",
                                       "txn_count_24h"])
    assert groups["account_txn_velocity"][1] == ["txn_count_1h", "txn_count_24h"]
    assert groups["account_profile_nightly"][1] == ["profile_amount_mean_30d"]
    assert other == ["amount", "amount_to_mean_30d"]  # request field and on-demand feature: not recomputed

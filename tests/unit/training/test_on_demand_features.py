"""On-demand features: one function for a request (scalars) and for a training frame (vectors)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from features.on_demand import (
    ON_DEMAND_FEATURES,
    amount_to_mean_ratio,
    compute_on_demand,
    hour_of_day,
    is_new_device,
    seconds_since,
)

T = datetime(2024, 3, 5, 14, 30)


def test_amount_ratio_is_unknown_without_a_positive_mean() -> None:
    assert amount_to_mean_ratio(30.0, 10.0) == 3.0
    assert math.isnan(amount_to_mean_ratio(30.0, None))
    assert math.isnan(amount_to_mean_ratio(30.0, 0.0))
    np.testing.assert_allclose(amount_to_mean_ratio([4.0, 1.0], [2.0, np.nan]), [2.0, np.nan])


def test_seconds_since_treats_naive_as_utc_and_clips_skew() -> None:
    aware = T.replace(tzinfo=UTC)
    assert seconds_since(aware, T - timedelta(minutes=5)) == 300.0
    assert seconds_since(T, T + timedelta(seconds=3)) == 0.0  # producer clock skew
    assert math.isnan(seconds_since(T, None))


def test_new_device_means_never_seen_or_first_seen_within_a_day() -> None:
    assert is_new_device(T, None) is True
    assert is_new_device(T, T - timedelta(hours=2)) is True
    assert is_new_device(T, T - timedelta(days=3)) is False
    assert hour_of_day(T) == 14.0


def test_frame_and_request_paths_agree_row_by_row() -> None:
    frame = pd.DataFrame({
        "amount": [12.0, 900.0, 5.0],
        "profile_amount_mean_30d": [10.0, None, 50.0],
        "event_time": pd.to_datetime([T, T + timedelta(hours=11), T + timedelta(days=1)]),
        "last_password_change_time": [None, T, T - timedelta(days=1)],
        "device_first_seen_time": [T - timedelta(days=40), None, T],
        "txn_type": ["card_payment", "withdrawal", "p2p_transfer"],
    })
    batch = compute_on_demand(frame)
    assert list(batch.columns) == [f.name for f in ON_DEMAND_FEATURES]
    for i, row in frame.iterrows():
        single = compute_on_demand(row.to_dict())
        for name, value in single.items():
            expected = batch.loc[i, name]
            if isinstance(value, float) and math.isnan(value):
                assert math.isnan(expected), name
            else:
                assert value == expected, name
    assert batch["is_withdrawal"].tolist() == [False, True, False]
    assert batch["seconds_since_password_change"].iloc[1] == 11 * 3600


def test_missing_input_names_the_column() -> None:
    with pytest.raises(KeyError, match="profile_amount_mean_30d"):
        compute_on_demand({"amount": 1.0, "event_time": T, "txn_type": "deposit"})

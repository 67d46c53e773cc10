"""On-demand features: computed at request time from the request and a few looked-up values.

They are plain functions of their inputs so that training (vectorized over a frame of
historical transactions) and serving (one request) run *the same code*: a second
implementation in the service would be a training-serving skew waiting to happen.
Each function accepts scalars or array-likes (pandas Series, numpy arrays, lists) and
returns a float / bool for a scalar input, a numpy array otherwise. Timestamps may be
naive (taken as UTC, the storage convention) or timezone-aware.

``ON_DEMAND_FEATURES`` lists them with the input columns they need; ``compute_on_demand``
applies all of them to a frame (training) or a dict (serving).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

NEW_DEVICE_WITHIN = timedelta(hours=24)


def _is_scalar(value: Any) -> bool:
    return np.ndim(value) == 0 and not isinstance(value, pd.Series)


def _out(values: np.ndarray, scalar: bool) -> Any:
    return values.item() if scalar else values


def _scalar_epoch_seconds(value: Any) -> float:
    """One timestamp without building a Series: serving calls this per request, so it must be cheap."""
    if value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return math.nan
    if isinstance(value, datetime):  # pd.Timestamp included
        return (value if value.tzinfo is not None else value.replace(tzinfo=UTC)).timestamp()
    return float(_epoch_seconds(pd.Series([value], dtype=object))[0])


def _epoch_seconds(value: Any) -> np.ndarray:
    """Seconds since the epoch as float (NaN for missing); naive times are UTC."""
    if _is_scalar(value):
        return np.array([_scalar_epoch_seconds(value)])
    series = pd.Series(list(value), dtype=object)
    stamps = pd.to_datetime(series, utc=True)
    epoch = pd.Timestamp(0, tz="UTC")
    return (stamps - epoch).dt.total_seconds().to_numpy(dtype=float)


def _scalar_float(value: Any) -> float:
    try:
        return math.nan if value is None else float(value)
    except (TypeError, ValueError):
        return math.nan


def _floats(value: Any) -> np.ndarray:
    if _is_scalar(value):
        return np.array([_scalar_float(value)])
    return pd.to_numeric(pd.Series([value] if _is_scalar(value) else list(value), dtype=object),
                         errors="coerce").to_numpy(dtype=float)


def amount_to_mean_ratio(amount: Any, mean_amount_30d: Any) -> Any:
    """Amount relative to the account's 30-day mean: drains and big stolen-card payments stand out.

    NaN when the account has no (positive) 30-day mean yet: "unknown" must stay distinguishable
    from "ordinary", and XGBoost learns a direction for missing values.
    """
    amounts, means = _floats(amount), _floats(mean_amount_30d)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(means > 0, amounts / means, np.nan)
    return _out(ratio, _is_scalar(amount))


def seconds_since(event_time: Any, earlier_time: Any) -> Any:
    """Seconds from ``earlier_time`` (e.g. the last password change) to the event; NaN when never.

    A takeover changes the password minutes before draining the account, so small values are
    the signal; negative values (clock skew between producers) are clipped to 0.
    """
    delta = _epoch_seconds(event_time) - _epoch_seconds(earlier_time)
    return _out(np.where(np.isnan(delta), np.nan, np.maximum(delta, 0.0)), _is_scalar(event_time))


def is_new_device(event_time: Any, device_first_seen: Any, within: timedelta = NEW_DEVICE_WITHIN) -> Any:
    """True when the account first used this device less than ``within`` ago (or never before).

    "Never seen" alone misses takeovers, where the fraudster logs in from the new device a minute
    before paying; "first seen in the last day" catches both.
    """
    age = _epoch_seconds(event_time) - _epoch_seconds(device_first_seen)
    new = np.isnan(age) | (age < within.total_seconds())
    return _out(new, _is_scalar(event_time))


def hour_of_day(event_time: Any) -> Any:
    """UTC hour (0-23) as float: fraud rings work at hours the account's owner sleeps."""
    seconds = _epoch_seconds(event_time)
    hours = np.where(np.isnan(seconds), np.nan, np.floor(np.mod(seconds, 86_400) / 3600))
    return _out(hours, _is_scalar(event_time))


def is_txn_type(txn_type: Any, wanted: str) -> Any:
    """Indicator of one transaction type (the request carries it; trees want numbers)."""
    values = np.asarray([txn_type] if _is_scalar(txn_type) else list(txn_type), dtype=object)
    return _out(values == wanted, _is_scalar(txn_type))


@dataclass(frozen=True)
class OnDemandFeature:
    """A named on-demand feature: the function and the inputs (request fields or looked-up values)."""

    name: str
    inputs: tuple[str, ...]
    function: Callable[..., Any]
    dtype: str = "float64"


ON_DEMAND_FEATURES: tuple[OnDemandFeature, ...] = (
    OnDemandFeature("amount_to_mean_30d", ("amount", "profile_amount_mean_30d"), amount_to_mean_ratio),
    OnDemandFeature("seconds_since_password_change", ("event_time", "last_password_change_time"), seconds_since),
    OnDemandFeature("is_new_device", ("event_time", "device_first_seen_time"), is_new_device, "bool"),
    OnDemandFeature("hour_of_day", ("event_time",), hour_of_day),
    OnDemandFeature("is_withdrawal", ("txn_type",), lambda t: is_txn_type(t, "withdrawal"), "bool"),
    OnDemandFeature("is_p2p_transfer", ("txn_type",), lambda t: is_txn_type(t, "p2p_transfer"), "bool"),
    OnDemandFeature("is_card_payment", ("txn_type",), lambda t: is_txn_type(t, "card_payment"), "bool"),
)
"""Request fields the service receives (``amount``, ``event_time``, ``txn_type``) and looked-up
values: ``profile_amount_mean_30d`` (feature group account_profile_nightly),
``last_password_change_time`` and ``device_first_seen_time`` (account history)."""

ON_DEMAND_INPUTS: tuple[str, ...] = tuple(dict.fromkeys(i for f in ON_DEMAND_FEATURES for i in f.inputs))


def compute_on_demand(data: pd.DataFrame | Mapping[str, Any],
                      features: tuple[OnDemandFeature, ...] = ON_DEMAND_FEATURES) -> Any:
    """Every on-demand feature: a DataFrame (same index) for a frame, a dict for one request."""
    missing = [i for f in features for i in f.inputs if i not in data]
    if missing:
        raise KeyError(f"on-demand features need input(s) {sorted(set(missing))}")
    if isinstance(data, pd.DataFrame):
        out = {f.name: f.function(*(data[i] for i in f.inputs)) for f in features}
        return pd.DataFrame(out, index=data.index)
    return {f.name: f.function(*(data[i] for i in f.inputs)) for f in features}

"""A default training window longer than the data starts at the first transaction, so training is never empty."""

from __future__ import annotations

from datetime import timedelta

import pytest

from training.config import TrainingConfig
from training.pipeline import clamp_to_data
from training.testing import START, simulate_history

pytestmark = pytest.mark.integration


def test_window_start_moves_up_to_the_first_transaction_only_when_earlier(settings) -> None:
    simulate_history(settings, accounts=60, days=3, seed=2)
    start, end = START.replace(tzinfo=None), START.replace(tzinfo=None) + timedelta(days=3)

    clamped = clamp_to_data(settings, end - timedelta(days=28), end)  # `retraining`'s default 28 days

    assert start <= clamped < start + timedelta(hours=1)
    config = TrainingConfig(start=clamped, end=end, gap=timedelta(hours=6))
    assert config.train_end - config.start > timedelta(days=1)  # a real training period again
    later = start + timedelta(days=1)
    assert clamp_to_data(settings, later, end) == later  # a window inside the data is left alone

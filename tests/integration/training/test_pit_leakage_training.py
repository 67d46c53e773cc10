"""Leakage: a feature row stamped after the transaction, holding the label itself, must not reach training.

Three history tables keyed by the transaction's own ``event_id`` hold ``value = label``: one
stamped 1 s *after* the transaction (written once the outcome was known), one at the
transaction's *own* instant (what the stream writes for the event itself: serving, scoring the
transaction before the stream has seen it, can never read it), and one 1 s *before* (the
control: proves the join would carry such a value if it were allowed to). The training frame
must hold nothing from the first two and everything from the third.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import pytest

from features.offline import get_offline_store
from features.testing import stub_group
from training.config import TrainingConfig
from training.dataset import build_training_set, load_examples
from training.testing import simulate_history

pytestmark = pytest.mark.integration


def test_future_label_valued_feature_cannot_enter_through_the_pit_join(settings) -> None:
    simulate_history(settings, accounts=150, days=3, seed=5)
    config = TrainingConfig(start=datetime(2024, 3, 1), end=datetime(2024, 3, 4), gap=timedelta(hours=3))
    after = stub_group("leak_after", "event_id", leaked="int64")
    own = stub_group("leak_own", "event_id", own="int64")
    before = stub_group("leak_before", "event_id", known="int64")
    store = get_offline_store(settings)
    try:
        examples = load_examples(store, config)
        assert examples["label"].sum() > 5
        for group, column, shift in ((after, "leaked", timedelta(seconds=1)), (own, "own", timedelta(0)),
                                     (before, "known", -timedelta(seconds=1))):
            store.append_features(group, pd.DataFrame({
                "event_id": examples["event_id"], "event_time": examples["event_time"] + shift,
                column: examples["label"]}))
        frame = build_training_set(store, config, groups=[after, own, before]).frame
    finally:
        store.close()
    assert frame["leaked"].isna().all()  # nothing written after the transaction time leaks in
    assert frame["own"].isna().all()  # nor the transaction's own row: training sees what serving sees
    assert (frame["known"] == frame["label"]).all()  # the control: earlier rows do arrive

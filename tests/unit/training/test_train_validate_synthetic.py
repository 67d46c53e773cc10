"""Training and the validation gate on a small synthetic frame (no stores): fast and exact."""

from __future__ import annotations

import numpy as np
import pytest

from training.config import TrainingConfig
from training.dataset import TrainingSet
from training.device import DeviceFallbackWarning
from training.testing import SYNTHETIC_FEATURES, synthetic_config, synthetic_training_set
from training.train import train_model
from training.validation import DataValidationError, check_training_set, validate_training_set

CONFIG = synthetic_config()


def synthetic_set(n: int = 4000, seed: int = 0, config: TrainingConfig = CONFIG) -> TrainingSet:
    return synthetic_training_set(config, n, seed)


def test_model_learns_the_signal_with_thresholds_from_validation() -> None:
    training_set = synthetic_set()
    model = train_model(training_set, CONFIG)
    test = training_set.part("test")
    scores = model.predict(test)
    from sklearn.metrics import average_precision_score

    assert average_precision_score(test["label"], scores) > 5 * test["label"].mean()
    assert model.info["device"] == "cpu" and model.info["best_iteration"] < CONFIG.num_boost_round
    negatives = model.predict(training_set.part("validation").query("label == 0"))
    assert (negatives >= model.thresholds.review).mean() <= CONFIG.review_fpr
    assert model.thresholds.block >= model.thresholds.review
    expected = (len(training_set.part("train")) - training_set.part("train")["label"].sum()) \
        / training_set.part("train")["label"].sum()
    assert model.info["scale_pos_weight"] == pytest.approx(expected)


def test_training_is_repeatable_for_a_seed() -> None:
    training_set = synthetic_set()
    first = train_model(training_set, CONFIG).predict(training_set.part("test"))
    second = train_model(training_set, CONFIG).predict(training_set.part("test"))
    np.testing.assert_array_equal(first, second)


def test_cuda_request_trains_on_cpu_here_with_a_warning() -> None:
    from training.device import cuda_available

    if cuda_available():
        pytest.skip("this machine has a usable GPU: the fallback does not apply")
    config = CONFIG.model_copy(update={"device": "cuda"})
    with pytest.warns(DeviceFallbackWarning):
        model = train_model(synthetic_set(), config)
    assert model.info["device"] == "cpu" and model.info["requested_device"] == "cuda"


def test_calibrated_scores_are_probabilities_in_order() -> None:
    training_set = synthetic_set()
    model = train_model(training_set, CONFIG.model_copy(update={"calibrate": True}))
    raw = model.raw_scores(training_set.part("test"))
    calibrated = model.predict(training_set.part("test"))
    assert ((calibrated >= 0) & (calibrated <= 1)).all()
    order = np.argsort(raw)
    assert (np.diff(calibrated[order]) >= -1e-12).all()  # isotonic: monotone in the raw score


def test_validation_passes_a_good_frame_and_lists_each_failure() -> None:
    training_set = synthetic_set(1500)
    assert validate_training_set(training_set, CONFIG).success

    broken = synthetic_set(1500)
    broken.frame["txn_count_1h"] = broken.frame["txn_count_1h"].astype("float64")
    broken.frame.loc[:, "signal_score"] = np.nan  # a feature group that stopped joining
    broken.frame.loc[3, "txn_count_1h"] = -1.0  # counts are never negative
    broken.frame.loc[7, "event_id"] = broken.frame.loc[8, "event_id"]  # a join that duplicated rows
    broken.feature_columns = [*SYNTHETIC_FEATURES, "missing_feature"]
    with pytest.raises(DataValidationError) as caught:
        check_training_set(broken, CONFIG)
    text = str(caught.value)
    failed = {(r.expectation, r.column) for r in caught.value.report.failed}
    assert failed == {
        ("expect_table_columns_to_match_set", ""),
        ("expect_column_values_to_not_be_null", "signal_score"),
        ("expect_column_min_to_be_between", "txn_count_1h"),
        ("expect_column_values_to_be_unique", "event_id"),
    }
    assert "failed 4 of" in text and "missing_feature" in text and "observed -1.0" in text


def test_label_rate_and_split_coverage_are_checked() -> None:
    training_set = synthetic_set(1500)
    training_set.frame["label"] = 0
    report = validate_training_set(training_set, CONFIG)
    failed = {(r.expectation, r.column) for r in report.failed}
    assert ("expect_column_mean_to_be_between", "label") in failed
    assert {c for e, c in failed if e == "split_has_both_classes"} == {"split=train", "split=validation",
                                                                         "split=test"}

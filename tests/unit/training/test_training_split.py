"""TrainingConfig: split layout (train | gap | validation | test) and field-named errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from pydantic import ValidationError

from riskpipe.settings import Settings
from training.config import TrainingConfig
from training.dataset import assign_split

START, END = datetime(2024, 3, 1), datetime(2024, 3, 11)


def test_boundaries_follow_fractions_and_gap() -> None:
    config = TrainingConfig(start=START, end=END, gap=timedelta(hours=24), validation_fraction=0.1,
                            test_fraction=0.2)
    assert config.test_start == datetime(2024, 3, 9)
    assert config.validation_start == datetime(2024, 3, 8)
    assert config.train_end == datetime(2024, 3, 7)
    assert config.label_cutoff == END
    times = pd.Series(pd.to_datetime([START, datetime(2024, 3, 6, 23), datetime(2024, 3, 7),
                                      datetime(2024, 3, 7, 23), datetime(2024, 3, 8), datetime(2024, 3, 9),
                                      datetime(2024, 3, 10, 23)]))
    assert assign_split(times, config).tolist() == ["train", "train", "gap", "gap", "validation", "test", "test"]


def test_aware_times_become_naive_utc() -> None:
    config = TrainingConfig(start=datetime(2024, 3, 1, 1, tzinfo=UTC).astimezone(), end=END.replace(tzinfo=UTC))
    assert config.start == datetime(2024, 3, 1, 1) and config.end.tzinfo is None


@pytest.mark.parametrize(("values", "field"), [
    ({"start": END, "end": START}, "must be before end"),
    ({"start": START, "end": START + timedelta(days=1), "gap": timedelta(days=2)}, "no training period"),
    ({"start": START, "end": END, "block_fpr": 0.05}, "block_fpr"),
    ({"start": START, "end": END, "test_fraction": 0.7}, "test_fraction"),
    ({"start": START, "end": END, "device": "tpu"}, "device"),
])
def test_bad_values_name_the_field(values: dict, field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        TrainingConfig(**values)


def test_settings_supply_defaults_and_explicit_values_win(tmp_path) -> None:
    settings = Settings(data_dir=tmp_path, training_device="cpu", promotion_margin=0.05, review_capacity_per_day=7)
    config = TrainingConfig.from_settings(settings, start=START, end=END, device=None)
    assert (config.device, config.promotion_margin, config.review_capacity_per_day) == ("cpu", 0.05, 7)
    assert TrainingConfig.from_settings(settings, start=START, end=END, device="cuda").device == "cuda"
    assert settings.bentoml_home == tmp_path.resolve() / "bentoml"

"""A tiny real model for the serving tests and the benchmark: trained in a second, stored, promoted.

It uses the training package's own pieces (``FraudModel``, ``Thresholds``, ``model_store.save``,
``promotion.set_production``) so serving loads it exactly like a model from `riskpipe train`; only
the data is synthetic (fraud = big amount and a burst of transactions), so tests know which
request must score high.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from features.definitions.catalog import get_group
from riskpipe.settings import Settings
from training import model_store
from training.model import FraudModel, Thresholds
from training.promotion import set_production

FEATURES = ["amount", "txn_count_1h", "device_distinct_accounts_24h", "profile_amount_mean_30d",
            "amount_to_mean_30d", "is_withdrawal"]
VELOCITY, DEVICE, PROFILE = (get_group(n) for n in ("account_txn_velocity", "device_sharing",
                                                    "account_profile_nightly"))


def train_tiny_model(seed: int = 0, rounds: int = 20) -> FraudModel:
    import xgboost

    rng = np.random.default_rng(seed)
    n = 2000
    amount = rng.lognormal(4, 1, n)
    count = rng.poisson(2, n).astype(float)
    sharing = rng.poisson(1, n).astype(float)
    mean = rng.lognormal(4, 0.5, n)
    withdrawal = rng.random(n) < 0.3
    label = ((amount > 200) & (count > 3)) | (sharing > 3)
    x = np.column_stack([amount, count, sharing, mean, amount / mean, withdrawal]).astype(np.float32)
    x[rng.random(x.shape) < 0.05] = np.nan  # the model learns a direction for missing values
    booster = xgboost.train({"max_depth": 3, "eta": 0.3, "objective": "binary:logistic", "nthread": 1,
                             "seed": seed, "verbosity": 0},
                            xgboost.DMatrix(x, label=label.astype(float), feature_names=FEATURES),
                            num_boost_round=rounds)
    return FraudModel(booster=booster, feature_columns=list(FEATURES),
                      thresholds=Thresholds(review=0.3, block=0.7, review_fpr=0.05, block_fpr=0.01),
                      info={"seed": seed, "rounds": rounds})


def promote_tiny_model(settings: Settings, seed: int = 0, rounds: int = 20) -> str:
    """Train, save and make production; returns the tag."""
    tag = model_store.save(settings, train_tiny_model(seed, rounds),
                           {"feature_groups": ["account_txn_velocity", "device_sharing", "account_profile_nightly"],
                            "code_version": "test", "trained_at": datetime.now(UTC).isoformat()})
    set_production(settings, tag, reason="serving test")
    return tag

"""The CUDA code paths themselves: they run only where a usable GPU exists (skipped on CI, which has none).

The fallback on GPU-less machines is covered by test_xgb_device.py; these tests prove the other half
of the contract on a real GPU: training with ``device="cuda"`` really runs there, a GPU-trained model
scores the same on the CPU (what the model store hands to serving by default), and the serving path
(``predict_matrix`` + TreeSHAP reason codes) works with the booster on the GPU.
"""

from __future__ import annotations

import numpy as np
import pytest

from serving.reasons import top_reasons
from training.device import cuda_available, resolve_device
from training.model import prepare_for_scoring, to_matrix
from training.testing import synthetic_config, synthetic_training_set
from training.train import train_model

pytestmark = pytest.mark.skipif(not cuda_available(), reason="needs a usable NVIDIA GPU (none on this machine)")


@pytest.fixture(scope="module")
def gpu_model():
    config = synthetic_config(device="cuda")
    training_set = synthetic_training_set(config)
    return train_model(training_set, config), training_set


def test_auto_and_cuda_resolve_to_the_gpu() -> None:
    assert resolve_device("auto") == "cuda"
    assert resolve_device("cuda") == "cuda"


def test_cuda_training_runs_on_the_gpu_and_learns(gpu_model) -> None:
    from sklearn.metrics import average_precision_score

    model, training_set = gpu_model
    test = training_set.part("test")
    assert model.info["device"] == "cuda" and model.info["requested_device"] == "cuda"
    assert average_precision_score(test["label"], model.predict(test)) > 5 * test["label"].mean()


def test_gpu_and_cpu_scoring_of_a_gpu_model_agree(gpu_model) -> None:
    model, training_set = gpu_model
    matrix = to_matrix(training_set.part("test"), model.feature_columns)
    prepare_for_scoring(model.booster)  # what model_store.load does: CPU, few threads
    on_cpu = model.predict_matrix(matrix, calibrated=False)
    model.booster.set_param({"device": "cuda"})  # what serving does with serving_device=cuda
    on_gpu = model.predict_matrix(matrix, calibrated=False)
    single = np.array([model.predict_matrix(matrix[i : i + 1], calibrated=False)[0] for i in range(20)])
    np.testing.assert_allclose(on_gpu, on_cpu, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(single, on_cpu[:20], rtol=1e-5, atol=1e-6)


def test_reason_codes_with_the_booster_on_the_gpu(gpu_model) -> None:
    model, training_set = gpu_model
    model.booster.set_param({"device": "cuda"})
    fraud = training_set.part("test").query("label == 1").head(5)
    reasons = top_reasons(model.booster, to_matrix(fraud, model.feature_columns), model.feature_columns, 3)
    assert len(reasons) == len(fraud)
    # the planted signal is the strongest push towards fraud for most fraud rows
    assert sum(bool(r) and r[0].feature == "signal_score" for r in reasons) >= 3

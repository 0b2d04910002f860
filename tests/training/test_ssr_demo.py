"""The structured-sparsity demo (`make demo-ssr`): its config runs through the shared binary on real Fashion-MNIST."""

import json
import os

import pytest

pytestmark = pytest.mark.tf_only

from configs.demo import fashion_mnist_ssr  # noqa: E402


def _config(**method):
    config = fashion_mnist_ssr.get_config()
    config.method.update(method)
    return config


@pytest.mark.slow
def test_demo_learns_widths_then_shrinks_and_exports_the_learned_architecture(tmp_path):
    from sparse_keras.training import experiment

    # A strong lasso so that 32 steps already push kernels to zero; its subgradient steps then oscillate
    # with amplitude ~ lr * strength around 0, hence the larger tau. Accuracy is the real demo's job.
    config = _config(kernel_strength=0.05, size_strength=0.01, tau=0.05)
    config.epochs = 1
    config.data.train_examples = 4096
    config.progress = False
    config.strategy = "default"
    summary = experiment.run(config, str(tmp_path))

    assert summary["method"] == "ssr"
    assert summary["macs"] < summary["base_macs"]  # a strong lasso must remove something
    # The exported model is the shrunk one: never costlier than the base, and it computes what the masked
    # model computes. (Kernels of one layer with mixed learned sizes may be deployed in their largest box,
    # so its count can exceed the per-kernel count of eq. 10 in summary["macs"].)
    assert summary["shrunk"]["macs"] <= summary["base_macs"]
    assert summary["shrunk"]["test_accuracy"] == pytest.approx(summary["test_accuracy"], abs=1e-3)
    for name in ("architecture.md", "architecture.csv", "architecture.json", "architecture.png", "report.md",
                 "model.keras", "saved_model/saved_model.pb"):
        assert os.path.getsize(tmp_path / name) > 0, name
    # Thresholding only zeroes groups that were already below tau: the accuracy barely moves at the switch.
    transitions = json.loads((tmp_path / "transitions.json").read_text())
    assert abs(transitions["train:after_transition"] - transitions["train:end"]) < 0.02


def test_bad_strength_fails_before_anything_is_written(tmp_path):
    from sparse_keras.training import experiment

    workdir = tmp_path / "run"
    with pytest.raises(ValueError, match="config.method.kernel_strength"):
        experiment.run(_config(kernel_strength=-1.0), str(workdir))
    assert not workdir.exists()

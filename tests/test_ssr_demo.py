"""The demo binary end to end on real Fashion-MNIST (a slice of it), and its up-front config checks."""

import json
import os

import pytest

pytestmark = pytest.mark.tf_only

from configs.demo import fashion_mnist_ssr  # noqa: E402
from train import ssr_demo  # noqa: E402


def _config(**overrides):
    config = fashion_mnist_ssr.get_config()
    config.update(overrides)
    return config


@pytest.mark.slow
def test_demo_learns_sparsity_and_writes_every_output(tmp_path):
    # A strong lasso so that 32 steps already push kernels to zero; its subgradient steps then oscillate
    # with amplitude ~ lr * strength around 0, hence the larger tau. Accuracy is the real demo's job.
    config = _config(epochs=1, train_examples=4096, kernel_strength=0.05, size_strength=0.01, tau=0.05)
    summary = ssr_demo.run(config, str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == [
        "architecture.csv",
        "architecture.json",
        "architecture.md",
        "architecture.png",
        "model.keras",
        "summary.json",
        "tensorboard",
    ]
    assert json.loads((tmp_path / "summary.json").read_text()) == json.loads(json.dumps(summary, default=str))
    assert summary["macs_learned"] < summary["macs_base"]  # a strong lasso must remove something
    assert 0.0 <= summary["accuracy_thresholded"] <= 1.0
    # Thresholding only zeroes groups that were already below tau: accuracy barely moves.
    assert abs(summary["accuracy_thresholded"] - summary["accuracy_trained"]) < 0.02


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"kernel_strength": -1.0}, "config.kernel_strength must be a non-negative number, got -1.0"),
        ({"epochs": 0}, "config.epochs must be a positive integer, got 0"),
        ({"tau": float("nan")}, "config.tau"),
        ({"dataset": "imagenet21k"}, "imagenet21k"),
        ({"model": "resnet9000"}, "resnet9000"),
    ],
)
def test_bad_configs_fail_before_training_and_write_nothing(tmp_path, overrides, message):
    workdir = tmp_path / "run"
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ssr_demo.run(_config(**overrides), str(workdir))
    assert not workdir.exists()


def test_unwritable_workdir_is_reported(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ValueError, match="not a writable directory"):
        ssr_demo.run(_config(), str(blocker / "run"))

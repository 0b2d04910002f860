"""The ADMM binary end to end on a slice of real Fashion-MNIST: path outputs, resume, bad configs."""

import os

import pytest

pytestmark = pytest.mark.tf_only

from configs.admm import admm_cnn_fashion_mnist  # noqa: E402
from train import admm as admm_binary  # noqa: E402


def _config(**overrides):
    config = admm_cnn_fashion_mnist.get_config()
    # A small, fast stand-in for the paper's CNN so that the whole path fits in a CI minute.
    small = dict(model="plain_cnn", train_examples=512, pretrain_epochs=1, mu_start=0.5, mu_stop=50.0,
                 mu_num=2, nu=1, xi=1, learning_rate=0.01)
    config.update({**small, **overrides})
    return config


@pytest.mark.slow
def test_admm_binary_writes_the_solution_path_and_resumes(tmp_path):
    summary = admm_binary.run(_config(), str(tmp_path))
    for name in ("solution_path.csv", "solution_path.md", "solution_path.png", "model.keras", "summary.json"):
        assert (tmp_path / name).exists(), name
    rows = summary["path"]
    assert [r["mu"] for r in rows][1:] == pytest.approx([0.5, 50.0])
    assert rows[-1]["sparsity_percent"] >= rows[1]["sparsity_percent"]
    assert rows[-1]["sparsity_percent"] > 0  # mu = 50 with rho = 100 zeroes filters with norm <= 1
    assert rows[-1]["macs"] < rows[0]["macs"]
    header = (tmp_path / "solution_path.md").read_text().splitlines()[0]
    assert "zero_filters[conv2]" in header
    # Rerunning the same command finds the finished path in the checkpoint and trains nothing more.
    again = admm_binary.run(_config(), str(tmp_path))
    assert again["path"] == summary["path"]


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"rho": 0.0}, "config.rho must be a finite positive number, got 0.0"),
        ({"penalty": "l3"}, "penalty must be one of"),
        ({"nu": 0}, "config.nu must be a positive integer, got 0"),
        ({"pretrained": "/nonexistent.keras"}, "/nonexistent.keras"),
        ({"learning_rate": 0.05, "momentum": 0.0}, "must stay below 2"),
    ],
)
def test_bad_configs_fail_before_work(tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        admm_binary.run(_config(**overrides), str(tmp_path / "run"))
    assert not os.path.exists(tmp_path / "run")


def test_command_line_overrides_reach_the_config_and_bad_values_stop_it(tmp_path):
    import subprocess
    import sys

    command = [sys.executable, "-m", "train.admm", "--config=configs/admm/admm_cnn_fashion_mnist.py",
               f"--workdir={tmp_path / 'run'}", "--config.rho=-2.0"]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run(command, capture_output=True, text=True, cwd=root, timeout=300)
    assert result.returncode != 0
    assert "config.rho must be a finite positive number, got -2.0" in result.stderr
    assert not (tmp_path / "run").exists()


def test_the_binaries_import_into_one_process():
    from train import sweep, train  # none defines flags at import time, like train.admm

    assert callable(train.run) and callable(sweep.run) and callable(admm_binary.run)

"""The ADMM paper's mu path (Kiaee et al. 2016) through the common binary: path outputs, resume, bad configs."""

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.tf_only

from configs.admm import admm_cnn_fashion_mnist  # noqa: E402
from sparse_keras.training import experiment  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _config(pretrained=None, **overrides):
    config = admm_cnn_fashion_mnist.get_config(pretrained)
    # A small, fast stand-in for the paper's CNN so that the whole path fits in a CI minute.
    if not pretrained:
        config.model.name = "plain_cnn"
        config.epochs = 1
    config.data.train_examples = 512
    config.optimizer.learning_rate = 0.01
    config.method.mu_path.update(start=0.5, stop=50.0, num=2, nu=1, xi=1)
    config.update_from_flattened_dict(overrides)  # dotted keys, as on the command line
    return config


@pytest.mark.slow
def test_the_mu_path_writes_the_solution_path_and_a_rerun_trains_nothing_more(tmp_path):
    summary = experiment.run(_config(), str(tmp_path))
    for name in ("solution_path.csv", "solution_path.md", "solution_path.png", "model.keras", "report.json"):
        assert (tmp_path / name).exists(), name
    rows = summary["solution_path"]
    assert [r["mu"] for r in rows][1:] == pytest.approx([0.5, 50.0])
    assert rows[-1]["sparsity_percent"] >= rows[1]["sparsity_percent"]
    assert rows[-1]["sparsity_percent"] > 0  # mu = 50 with rho = 100 zeroes filters with norm <= 1
    assert rows[-1]["macs"] < rows[0]["macs"]
    assert all(0 <= r["accuracy"] <= 1 for r in rows)  # every row has the test accuracy of its mu
    header = (tmp_path / "solution_path.md").read_text().splitlines()[0]
    assert "zero_filters[conv2]" in header
    # Rerunning the same command finds the finished run and trains nothing more.
    again = experiment.run(_config(), str(tmp_path))
    assert again["solution_path"] == summary["solution_path"]


@pytest.mark.slow
def test_the_path_starts_from_a_trained_model_without_dense_epochs(tmp_path):
    from sparse_keras import models

    path = str(tmp_path / "trained.keras")
    models.get("admm_cnn", num_classes=10, input_shape=(28, 28, 1)).save(path)
    config = _config(path, **{"method.mu_path.num": 1, "method.mu_path.stop": 0.5, "method.mu_path.start": 0.1})
    assert config.epochs == 0 and config.method.layers  # the paper's layers of admm_cnn
    summary = experiment.run(config, str(tmp_path / "run"))
    assert len(summary["solution_path"]) == 2
    assert {row["stage"] for row in summary["history"]} == {"admm"}


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"method.rho": 0.0}, "config.method.rho must be a finite number > 0, got 0.0"),
        ({"method.penalty": "l3"}, "config.method.penalty must be one of"),
        ({"method.mu_path.nu": 0}, "config.method.mu_path: nu must be a positive integer, got nu=0"),
        ({"method.mu_path.max_mus": 0}, "config.method.mu_path.max_mus must be None or a positive integer, got 0"),
        ({"optimizer.learning_rate": 0.05, "optimizer.momentum": 0.0}, "must stay below 2"),
    ],
)
def test_bad_configs_fail_before_work(tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        experiment.run(_config(**overrides), str(tmp_path / "run"))
    assert not os.path.exists(tmp_path / "run")


def test_a_missing_trained_model_fails_before_work(tmp_path):
    with pytest.raises(ValueError, match="/nonexistent.keras"):
        experiment.run(admm_cnn_fashion_mnist.get_config("/nonexistent.keras"), str(tmp_path / "run"))
    assert not os.path.exists(tmp_path / "run")


def test_command_line_overrides_reach_the_config_and_bad_values_stop_it(tmp_path):
    command = [sys.executable, "-m", "train.train", "--config=configs/admm/admm_cnn_fashion_mnist.py",
               f"--workdir={tmp_path / 'run'}", "--config.method.rho=-2.0"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 2
    assert "config.method.rho must be a finite number > 0, got -2.0" in result.stderr
    assert not (tmp_path / "run").exists()


def test_the_binaries_import_into_one_process():
    from train import sweep, train  # noqa: F401 (neither defines flags at import time)

    from sparse_keras.training import sweep as sweep_lib

    assert callable(experiment.run) and callable(sweep_lib.run)

"""The GPU suite: its timing core, verdicts, table, TF-free import and a quick end-to-end row (JAX backend)."""

import json
import subprocess
import sys

import keras
import numpy as np
import pytest

from benchmarks import gpu_suite
from test_core_import import HIDE_TENSORFLOW

jax_only = pytest.mark.skipif(keras.backend.backend() != "jax", reason="the GPU suite runs on the JAX backend")


def test_targets_are_the_papers_gpu_goals():
    assert gpu_suite.TARGETS[("lstnet_resnet20", "train")] == gpu_suite.TARGETS[("lstnet_resnet20", "infer")] == 9_600
    assert gpu_suite.TARGETS[("lstnet_resnet56", "train")] == 3_800
    assert gpu_suite.TARGETS[("sdnet18", "train")] == 20_000
    assert ("sdnet18_all", "train") not in gpu_suite.TARGETS  # reported only


def test_verdicts():
    assert gpu_suite.verdict(9_600, 9_600) == "PASS"
    assert gpu_suite.verdict(9_599, 9_600) == "FAIL"
    assert gpu_suite.verdict(1.04, 1.03, higher_is_better=False) == "FAIL"
    assert gpu_suite.verdict(1.02, 1.03, higher_is_better=False) == "PASS"
    assert gpu_suite.verdict(1e9, 1, judged=False, why="quick run") == "not judged (quick run)"


def test_table_puts_ours_beside_the_official_code():
    rows = [gpu_suite.Row("sdnet18 float32 train (batch 128)", 24_000.0, "images/s", ">= 20,000", "PASS"),
            gpu_suite.Row("ADMM overhead", 1.01, "x", "<= 1.05", "PASS")]
    gpu_suite.attach_peer(rows, {"rates": {"sdnet18 float32 train": 8_000.0}})
    assert rows[0].official == 8_000.0 and rows[1].official is None
    env = {"date": "d", "device": "H200", "device_description": "H200 (cuda:0)", "keras": "3", "backend": "jax",
           "jax": "0", "numpy": "2", "python": "3.12", "sizes": {}, "quick": False}
    table = gpu_suite.format_markdown(env, rows, {"torch": "2", "device": "H200"}, "cmd")
    assert "| sdnet18 float32 train (batch 128) | 24,000.0 images/s | >= 20,000 | PASS | 8,000.0 | 3.00x |" in table
    assert "| ADMM overhead | 1.010x | <= 1.05 | PASS | - | - |" in table


def test_flags_reject_unknown_models():
    with pytest.raises(SystemExit):
        gpu_suite.parse_args(["--models", "resnet20"])
    assert gpu_suite.parse_args(["--quick"]).sizes is gpu_suite.QUICK


@jax_only
def test_timed_steps_are_the_fit_step_and_leave_the_model_usable():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(3)(inputs))
    model.compile(keras.optimizers.SGD(0.1, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=True)
    x, y = np.ones((8, 4), "float32"), np.zeros(8, "int32")
    before = model.get_weights()[0].copy()
    sizes = {"warmup": 1, "steps": 3, "windows": 2}
    windows = gpu_suite.time_train_step(model, x, y, sizes)
    assert len(windows) == 2 and min(windows) > 0
    # warm-up + 3 steps x 2 windows, all applied to the model's own variables (the step donates its state)
    assert int(model.optimizer.iterations.numpy()) == 7
    assert not np.allclose(model.get_weights()[0], before)
    assert len(gpu_suite.time_predict_step(model, x, sizes)) == 2
    assert model.predict_on_batch(x).shape == (8, 3)


def test_suite_imports_without_tensorflow():
    code = HIDE_TENSORFLOW + "\nimport benchmarks.gpu_suite, benchmarks.official_torch_speed\nprint('ok')\n"
    env = {"KERAS_BACKEND": "jax", "PATH": "/usr/bin:/bin", "JAX_PLATFORMS": "cpu", "HOME": "/tmp"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


@jax_only
@pytest.mark.slow
def test_quick_run_of_one_row_writes_the_table(tmp_path):
    gpu_suite.main(["--quick", "--models", "resnet18_cifar", "--precisions", "mixed_bfloat16", "--skip-overheads",
                    "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "gpu_suite.json").read_text())
    names = [row["name"] for row in saved["rows"]]
    assert names == ["resnet18_cifar mixed_bfloat16 train (batch 2)", "resnet18_cifar mixed_bfloat16 infer (batch 4)"]
    assert all(row["value"] > 0 for row in saved["rows"])
    assert saved["environment"]["quick"] is True
    assert "| resnet18_cifar mixed_bfloat16 train (batch 2) |" in (tmp_path / "gpu_suite.md").read_text()
    assert keras.mixed_precision.global_policy().name == "float32"  # the suite restores the policy

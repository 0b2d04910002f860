"""`python -m train.train`: every method from a config, kill-and-resume, bad configs, export round trip."""

import glob
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

pytestmark = [pytest.mark.tf_only, pytest.mark.slow]

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SMOKE = os.path.join(REPO, "configs", "smoke", "fashion_mnist.py")


def command(method, workdir, *overrides):
    return [sys.executable, "-m", "train.train", f"--config={SMOKE}:{method}", f"--workdir={workdir}", *overrides]


def run_binary(method, workdir, *overrides):
    result = subprocess.run(command(method, workdir, *overrides), cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def weights(workdir):
    import keras

    return keras.saving.load_model(os.path.join(workdir, "model.keras"), compile=False).get_weights()


@pytest.fixture(scope="module")
def admm_run(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("admm_uninterrupted"))
    run_binary("admm", workdir)
    return workdir


def test_sigkill_mid_training_then_rerun_equals_an_uninterrupted_run(admm_run, tmp_path):
    workdir = str(tmp_path / "killed")
    process = subprocess.Popen(command("admm", workdir), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Kill inside the ADMM stage (stage 1), between checkpoints: they come every 3 steps (8 steps per epoch),
    # so its 4th checkpoint is global step 15, one step before the epoch's end.
    deadline = time.time() + 300
    while time.time() < deadline and not glob.glob(os.path.join(workdir, "checkpoints", "stage1", "ckpt-4.index")):
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before it could be killed"
    time.sleep(0.3)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not os.path.exists(os.path.join(workdir, "model.keras"))

    resumed = run_binary("admm", workdir)
    assert "Resuming" in resumed.stdout
    for got, expected in zip(weights(workdir), weights(admm_run)):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_admm_run_prunes_reports_and_exports_a_servable_model(admm_run):
    import json

    import keras
    import tensorflow as tf

    report = json.load(open(os.path.join(admm_run, "report.json")))
    assert report["method"] == "admm" and 0 <= report["test_accuracy"] <= 1
    assert report["macs"] < report["base_macs"]  # ADMM-l0 zeroed filters (mu 0.5, rho 10, no guard)
    for name in ("report.md", "architecture.png", "architecture.md", "model.keras"):
        assert os.path.getsize(os.path.join(admm_run, name)) > 0
    assert glob.glob(os.path.join(admm_run, "tensorboard", "events.out.tfevents.*"))
    # Each epoch's wall time (steps and evaluation) is in its row, and the report totals them.
    history = report["history"]
    assert history and all(row["seconds"] > 0 for row in history)
    assert f"{len(history)} epochs took " in open(os.path.join(admm_run, "report.md")).read()

    x = np.random.default_rng(0).random((4, 28, 28, 1)).astype("float32")
    model = keras.saving.load_model(os.path.join(admm_run, "model.keras"), compile=False)
    loaded = tf.saved_model.load(os.path.join(admm_run, "saved_model"))  # keep it: serve() uses its variables
    served = loaded.serve(tf.constant(x))
    np.testing.assert_allclose(np.asarray(served), keras.ops.convert_to_numpy(model(x)), rtol=1e-5, atol=1e-5)
    assert not [p for p in os.listdir(admm_run) if p.startswith(".tmp")]


@pytest.mark.parametrize("method", ["none", "ssr", "lrsd"])
def test_every_method_runs_from_its_config(method, tmp_path):
    run_binary(method, str(tmp_path), "--config.checkpoint_every_steps=100")
    assert os.path.exists(tmp_path / "saved_model" / "saved_model.pb")
    if method == "lrsd":  # the paper's Tables 1-3 row and Fig. 5
        table = (tmp_path / "lrsd_table.md").read_text()
        assert "N_c/N_o" in table and "Fine-tuned" in table
        assert (tmp_path / "lrsd_layers.png").stat().st_size > 0


def test_bfloat16_mixed_precision_is_one_switch(tmp_path):
    run_binary("none", str(tmp_path), "--config.mixed_precision=mixed_bfloat16", "--config.data.train_examples=128")
    import json

    assert json.load(open(tmp_path / "report.json"))["mixed_precision"] == "mixed_bfloat16"


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["--config.model.name=resnet9000"], "config.model.name='resnet9000'"),
        (["--config.method.mu=-1.0"], "config.method.mu must be a finite number > 0, got -1.0"),
        (["--config.data.name=imagenet_fake"], "name='imagenet_fake'"),
        (["--config.optimizer.learning_rate=0.0"], "config.optimizer.learning_rate must be a finite positive number"),
        (["--config.mixed_precision=float8"], "config.mixed_precision must be one of"),
        (["--config.data.name=cifar10", "--config.data.data_dir=/nonexistent/tfds"], "is not prepared in"),
    ],
)
def test_bad_configs_fail_before_anything_is_written(overrides, message, tmp_path):
    from ml_collections import config_flags  # noqa: F401 (the binary's dependency, present)

    from configs.smoke import fashion_mnist
    from sparse_keras.training import experiment

    config = fashion_mnist.get_config("admm")
    for override in overrides:
        key, value = override[len("--config."):].split("=", 1)
        node = config
        *parents, leaf = key.split(".")
        for parent in parents:
            node = node[parent]
        current = node[leaf]
        node[leaf] = type(current)(value) if current is not None else value
    workdir = tmp_path / "never"
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        experiment.run(config, str(workdir))
    assert not workdir.exists()


def test_unwritable_workdir_is_named(tmp_path):
    from configs.smoke import fashion_mnist
    from sparse_keras.training import experiment

    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ValueError, match="is not a writable directory"):
        experiment.run(fashion_mnist.get_config("none"), str(blocker / "workdir"))


def test_lrsd_method_prunes_s_at_the_stage_end_and_fine_tunes_with_its_own_optimizer():
    from configs.smoke import fashion_mnist
    from sparse_keras import convert, models
    from sparse_keras.sparsity import masking
    from sparse_keras.training import stages

    config = fashion_mnist.get_config("lrsd")
    config.method.finetune_optimizer = dict(config.optimizer, learning_rate=1e-3)
    config.method.finetune_schedule = dict(config.schedule)
    stages.check(config)
    model = convert.to_lrsd(models.get("plain_cnn", num_classes=10, input_shape=(28, 28, 1)), rank=1)
    train, finetune = stages.plan(config, model)
    assert (train.name, finetune.name) == ("train", "finetune")
    assert train.optimizer is None and finetune.optimizer["learning_rate"] == 1e-3
    train.leave()
    masks = masking.current_masks(model)
    assert masks and all(path.endswith("s_kernel") for path in masks)
    kept = sum(float(m.sum()) for m in masks.values()) / sum(m.size for m in masks.values())
    assert 0 < kept < 1  # energy ratio 0.9 keeps the fewest largest entries, not all of them


@pytest.mark.parametrize("strengths", [dict(kernel_strength=1.0, size_strength=0.0),
                                       dict(kernel_strength=0.0, size_strength=1.0),
                                       dict(kernel_strength=1.0, size_strength=1.0)])
def test_ssr_method_masks_every_group_at_or_below_tau_whichever_regularizers_ran(strengths):
    import keras

    from configs.smoke import fashion_mnist
    from sparse_keras import models
    from sparse_keras.sparsity import masking
    from sparse_keras.training import stages

    config = fashion_mnist.get_config("ssr")
    config.method.update(strengths)
    config.method.tau = 0.05
    stages.check(config)
    model = models.get("plain_cnn", num_classes=10, input_shape=(28, 28, 1))
    conv = model.get_layer("conv2")
    kernel = keras.ops.convert_to_numpy(conv.kernel).copy()
    kernel[..., 5] = 1e-4  # one whole output kernel k_ij below tau: Omega_1's group and Omega_2's largest cut it
    conv.kernel.assign(kernel)
    train, finetune = stages.plan(config, model)
    train.enter()
    train.leave()
    masks = masking.current_masks(model)
    assert masks[conv.kernel.path][..., 5].max() == 0  # masked for fine-tuning
    assert masks[conv.kernel.path][..., :5].min() == 1  # the trained kernels stay
    assert not keras.ops.convert_to_numpy(conv.kernel)[..., 5].any()
    assert not model.losses  # the penalties are gone for fine-tuning


@pytest.mark.parametrize("runtimes", [("tf", "onnx"), (), ("TF",)])
def test_bad_latency_runtimes_fail_before_anything_is_written(runtimes, tmp_path):
    from configs.smoke import fashion_mnist
    from sparse_keras.training import experiment

    config = fashion_mnist.get_config("admm")
    config.latency_runtimes = runtimes
    with pytest.raises(ValueError, match=r"config.latency_runtimes must be a non-empty tuple of \('tf', 'tflite'\)"):
        experiment.run(config, str(tmp_path / "never"))
    assert not (tmp_path / "never").exists()


def test_the_shrunk_model_is_timed_on_every_runtime_the_config_names_without_stray_warnings(tmp_path):
    import warnings

    import keras

    from sparse_keras.training import reports

    inputs = keras.Input((8, 8, 1))
    conv = keras.layers.Conv2D(4, 3, padding="same", name="conv")
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(conv(inputs))))
    kernel, bias = conv.get_weights()
    kernel[..., :2], bias[:2] = 0.0, 0.0  # two of the four filters are gone: shrink drops them
    conv.set_weights([kernel, bias])
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # the report carries compare()'s warnings; none escapes
        shrunk, comparison = reports._shrink(model, (8, 8, 1), 0.0, str(tmp_path), ("tf", "tflite"))
    assert shrunk.get_layer("conv").filters == 2
    assert set(comparison.latency) == {("tf", 1), ("tf", 64), ("tflite", 1), ("tflite", 64)}
    assert "tflite latency, batch 64" in comparison.to_markdown()
    assert os.path.getsize(tmp_path / "dense_with_zeros.keras") > 0


def test_a_run_scores_each_distinct_state_of_its_weights_once(tmp_path, monkeypatch):
    from configs.smoke import fashion_mnist
    from sparse_keras.training import evaluation, experiment

    calls, passes = [], []
    real_call, real_evaluate = evaluation.Evaluator.__call__, evaluation.evaluate
    monkeypatch.setattr(evaluation.Evaluator, "__call__", lambda self, model: calls.append(1) or real_call(self, model))
    monkeypatch.setattr(evaluation, "evaluate", lambda *args, **kwargs: passes.append(1) or real_evaluate(*args, **kwargs))
    summary = experiment.run(fashion_mnist.get_config("admm"), str(tmp_path / "run"))
    # The dense stage ends on its last epoch's weights, fine-tuning ends without a transition, and the
    # report scores the final weights again: none of these costs a pass over the test set.
    assert len(passes) <= len(calls) - 3
    assert summary["test_accuracy"] == summary["history"][-1]["test_accuracy"]

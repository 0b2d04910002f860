"""Tests for sparse_keras.training: the tf.distribute training loop, ADMM inside it, strategy selection.

Replication is tested on 2 logical CPU devices (as Keras' ``distribute_test.py`` does). TensorFlow only
accepts that configuration before it initialises its devices, which other test files in this pytest
process may have done already, so the distributed scenarios run in a fresh interpreter: this file run
as a script (``python tests/training/test_distributed_loop.py scenarios``) configures the devices, runs every
scenario once and prints the results as JSON, which the tests below check one by one. The same script
mode runs the two workers of the ``MultiWorkerMirroredStrategy`` test (``... worker INDEX PORT PORT``).
"""

import json
import os
import pathlib
import re
import socket
import subprocess
import sys
import traceback

import keras
import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from sparse_keras.regularizers import KernelGroupLasso  # noqa: E402
from sparse_keras.sparsity import masking  # noqa: E402
from sparse_keras.sparsity.admm import ADMM  # noqa: E402
from sparse_keras.sparsity.schedules import MuPath  # noqa: E402
from sparse_keras.training import distribute  # noqa: E402
from sparse_keras.training import loop  # noqa: E402

pytestmark = pytest.mark.tf_only

REPO = pathlib.Path(__file__).resolve().parents[2]
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)


# -- shared by the tests and the subprocess -------------------------------------------------------------
def small_cnn(strength=0.0):
    """Two small convs and a classifier; the same initial weights every time (the seed is fixed here)."""
    keras.utils.set_random_seed(1)
    regularizer = KernelGroupLasso(strength) if strength else None
    inputs = keras.Input((8, 8, 1))
    conv = dict(padding="same", activation="relu", kernel_regularizer=regularizer)
    h = keras.layers.Conv2D(4, 3, name="conv1", **conv)(inputs)
    h = keras.layers.Conv2D(6, 3, name="conv2", **conv)(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    return keras.Model(inputs, keras.layers.Dense(3, name="head")(h))


def toy_data(n=41, batch_size=16, nan_batch=None):
    """``n`` random 8x8 images; 41 = 16 + 16 + 9, so the last batch splits 5/4 over two replicas.

    With ``nan_batch``, examples come with sample weights, NaN for one example of that batch.
    """
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 8, 8, 1)).astype("float32")
    y = rng.integers(0, 3, size=n)
    if nan_batch is None:
        return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)
    weights = np.ones(n, "float32")
    weights[nan_batch * batch_size] = np.nan
    return tf.data.Dataset.from_tensor_slices((x, y, weights)).batch(batch_size)


def train_fresh(strategy, strength=0.0, hooks=(), epochs=4, dataset=None, **kwargs):
    with strategy.scope():
        model = small_cnn(strength)
        optimizer = keras.optimizers.SGD(0.05, momentum=0.9)
    dataset = toy_data() if dataset is None else dataset
    losses = loop.train(model, optimizer, LOSS, dataset, strategy=strategy, epochs=epochs, hooks=hooks, **kwargs)
    return model, optimizer, losses


def max_diff(xs, ys):
    return max(float(np.abs(np.asarray(x) - np.asarray(y)).max()) for x, y in zip(xs, ys))


def replica_values(variable):
    """The value of ``variable`` on every replica (one entry for an ordinary variable)."""
    value = variable.value
    return [np.array(v.numpy()) for v in getattr(value, "values", [value])]


def nonzeros_under_masks(admm, masks):
    """Weights that a mask zeroes but that are not zero, on any replica."""
    count = 0
    for target in admm.targets:
        for value in replica_values(target.slot.variable):
            count += int(np.count_nonzero(value[masks[target.path] == 0]))
    return count


# -- the scenarios run in the subprocess on 2 logical CPUs ----------------------------------------------
def scenario_trajectory(mirrored, default):
    reference, _, expected = train_fresh(default, strength=0.05)
    model, _, losses = train_fresh(mirrored, strength=0.05)
    return {
        "replicas": mirrored.num_replicas_in_sync,
        "default_losses": expected,
        "mirrored_losses": losses,
        "weights_max_diff": max_diff(model.get_weights(), reference.get_weights()),
    }


def _admm_run(strategy):
    admm = ADMM("l1", mu=0.3, rho=1.0, guard=None)
    model, optimizer, losses = train_fresh(strategy, hooks=[admm], epochs=5)
    return model, optimizer, admm, losses


def scenario_admm(mirrored, default):
    _, _, expected, _ = _admm_run(default)
    model, optimizer, admm, losses = _admm_run(mirrored)
    f_type = type(admm.targets[0].f.value).__name__
    masks = admm.finalize()
    # Masked fine-tuning in the same loop, as the binaries do it after finalize().
    finetune_losses = loop.train(model, optimizer, LOSS, toy_data(), strategy=mirrored, epochs=2)
    return {
        "f_type": f_type,
        "losses": losses,
        "finetune_losses": finetune_losses,
        "zero_blocks": admm.sparsity()["zero_blocks"],
        "blocks": admm.sparsity()["blocks"],
        "f_max_diff": max_diff([t.f.numpy() for t in admm.targets], [t.f.numpy() for t in expected.targets]),
        "masked_zeros": int(sum((m == 0).sum() for m in masks.values())),
        "masked_nonzero_after_finetune": nonzeros_under_masks(admm, masks),
    }


def _admm_path_run(strategy):
    admm = ADMM("l1", mu=MuPath([0.3, 0.5], delta=1, nu=1, xi=2), rho=1.0, guard=None)
    _, _, losses = train_fresh(strategy, hooks=[admm], epochs=50)  # the path ends the run earlier
    return admm, losses


def scenario_admm_path(mirrored, default):
    expected, expected_losses = _admm_path_run(default)
    admm, losses = _admm_path_run(mirrored)
    return {
        "epochs": len(losses),
        "default_epochs": len(expected_losses),
        "total_epochs": admm.total_epochs,
        "phase": admm.phase,
        "zero_blocks": [row["zero_blocks"] for row in admm.history],
        "default_zero_blocks": [row["zero_blocks"] for row in expected.history],
        "masked_nonzero": nonzeros_under_masks(admm, admm.masks),
    }


SCENARIOS = {"trajectory": scenario_trajectory, "admm": scenario_admm, "admm_path": scenario_admm_path}


def run_scenarios():
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    # One MirroredStrategy for every scenario: two strategies over the same devices in one process hand
    # out the same collective keys, and a second model's all-reduce then fails with a shape mismatch.
    mirrored, default = distribute.make_strategy("mirrored"), distribute.make_strategy("default")
    results = {}
    for name, scenario in SCENARIOS.items():
        try:
            results[name] = scenario(mirrored, default)
        except Exception:  # reported to the test of this scenario only
            results[name] = {"error": traceback.format_exc()}
    print("RESULTS " + json.dumps(results), flush=True)


def run_worker(index, ports):
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    os.environ["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
    strategy = distribute.make_strategy()  # "auto" must pick the multi-worker strategy from TF_CONFIG
    dataset = toy_data(n=32)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    admm = ADMM("l1", mu=0.3, rho=1.0, guard=None)
    _, _, losses = train_fresh(strategy, hooks=[admm], epochs=2, dataset=dataset.with_options(options))
    result = {"strategy": type(strategy).__name__, "replicas": strategy.num_replicas_in_sync, "losses": losses}
    result["f"] = [np.array(t.f.numpy()).tolist() for t in admm.targets]
    print("RESULT " + json.dumps(result), flush=True)


def _script(*args):
    """The command and environment that run this file as a script in a fresh interpreter."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": path}
    env.pop("TF_CONFIG", None)  # a worker sets its own
    return [sys.executable, str(pathlib.Path(__file__).resolve()), *args], env


def _last_json(stdout, prefix):
    lines = [line for line in stdout.splitlines() if line.startswith(prefix + " ")]
    return json.loads(lines[-1][len(prefix) + 1 :]) if lines else None


@pytest.fixture(scope="module")
def distributed():
    command, env = _script("scenarios")
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    results = _last_json(result.stdout, "RESULTS")
    assert result.returncode == 0 and results is not None, result.stdout[-3000:] + result.stderr[-5000:]
    return results


def scenario(results, name):
    outcome = results[name]
    assert "error" not in outcome, outcome.get("error")
    return outcome


# -- (a) the loss is the same global objective under every strategy -------------------------------------
def test_mirrored_loop_on_two_replicas_follows_the_default_strategy_trajectory(distributed):
    out = scenario(distributed, "trajectory")
    assert out["replicas"] == 2
    # The group lasso is a visible part of this loss: counting it once per replica would move the curve.
    np.testing.assert_allclose(out["mirrored_losses"], out["default_losses"], rtol=1e-4)
    assert out["weights_max_diff"] < 1e-4
    assert out["mirrored_losses"][-1] < out["mirrored_losses"][0]


# -- (b) ADMM as a hook inside the mirrored loop ---------------------------------------------------------
def test_admm_hook_in_mirrored_loop_matches_default_strategy_and_masks_hold(distributed):
    out = scenario(distributed, "admm")
    assert out["f_type"] == "MirroredVariable"  # attached by train() inside strategy.scope()
    zero = sum(out["zero_blocks"].values())
    assert 0 < zero < sum(out["blocks"].values()), out["zero_blocks"]
    assert out["f_max_diff"] < 1e-4
    assert out["masked_zeros"] > 0
    assert out["masked_nonzero_after_finetune"] == 0  # on every replica
    assert np.all(np.isfinite(out["finetune_losses"]))


def test_admm_mu_path_runs_to_the_end_inside_the_mirrored_loop(distributed):
    out = scenario(distributed, "admm_path")
    assert out["phase"] == "done"
    assert out["epochs"] == out["default_epochs"] <= out["total_epochs"]  # stop_training ended the loop
    assert out["zero_blocks"] == out["default_zero_blocks"]
    assert len(out["zero_blocks"]) == 2
    assert out["masked_nonzero"] == 0  # the final fine-tuning (masks installed mid-train) kept the zeros


# -- (e) two workers on localhost -------------------------------------------------------------------------
def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_workers_on_localhost_train_in_lockstep(tmp_path):
    ports = [str(p) for p in _free_ports(2)]
    workers, logs = [], []
    for index in range(2):
        command, env = _script("worker", str(index), *ports)
        # Files, not pipes: a worker blocked on a full pipe would stall its peer's collectives too.
        out, err = open(tmp_path / f"{index}.out", "w+"), open(tmp_path / f"{index}.err", "w+")
        logs.append((out, err))
        workers.append(subprocess.Popen(command, stdout=out, stderr=err, text=True, env=env, cwd=REPO))
    try:
        for worker in workers:
            worker.wait(timeout=120)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    results = []
    for worker, (out, err) in zip(workers, logs):
        out.seek(0), err.seek(0)
        stdout, stderr = out.read(), err.read()
        out.close(), err.close()
        results.append(_last_json(stdout, "RESULT"))
        assert worker.returncode == 0 and results[-1] is not None, stdout[-2000:] + stderr[-4000:]
        assert results[-1]["strategy"] == "CollectiveAllReduceStrategy" and results[-1]["replicas"] == 2
    np.testing.assert_allclose(results[0]["losses"], results[1]["losses"], rtol=1e-6)
    for f0, f1 in zip(results[0]["f"], results[1]["f"]):
        np.testing.assert_allclose(f0, f1, rtol=1e-6)


# -- the loop in this process, under the default strategy -------------------------------------------------
@pytest.fixture
def default_strategy():
    return distribute.make_strategy("default")


def test_non_finite_loss_stops_the_run_naming_the_step(default_strategy):
    with pytest.raises(FloatingPointError, match=r"at step 2 \(epoch 0\)"):
        train_fresh(default_strategy, dataset=toy_data(nan_batch=1))


def test_non_finite_loss_keeps_the_last_good_checkpoint(default_strategy, tmp_path):
    from sparse_keras.training import checkpoint
    from sparse_keras.training import experiment

    with default_strategy.scope():
        model = small_cnn()
        optimizer = keras.optimizers.SGD(0.05, momentum=0.9)
    checkpointer = checkpoint.Checkpointer(str(tmp_path), model, optimizer)
    hook = experiment.CheckpointHook(checkpointer, stage_index=0, every_steps=1)
    with pytest.raises(FloatingPointError, match=r"at step 3 \(epoch 0\)"):
        loop.train(model, optimizer, LOSS, toy_data(nan_batch=2), strategy=default_strategy, epochs=2, hooks=[hook])
    assert not all(np.isfinite(w).all() for w in model.get_weights())  # the bad step did reach the weights...

    with default_strategy.scope():
        fresh = small_cnn()
        fresh_optimizer = keras.optimizers.SGD(0.05, momentum=0.9)
        fresh_optimizer.build(fresh.trainable_variables)
    position = checkpoint.Checkpointer(str(tmp_path), fresh, fresh_optimizer).restore()
    assert position == (0, 0, 2)  # ...but the newest checkpoint is the one after step 2, before the bad step
    assert all(np.isfinite(w).all() for w in fresh.get_weights())


def test_masks_installed_by_a_hook_mid_training_hold_in_later_epochs(default_strategy):
    # The traced step captured the constraints it was traced with; the loop must notice the new ones.
    def install(epoch, logs):
        if epoch == 0:
            kernel = model.get_layer("conv2").kernel
            mask = np.ones(kernel.shape, "float32")
            mask[..., :3] = 0
            masking.install_masks(model, {kernel.path: mask})

    with default_strategy.scope():
        model = small_cnn()
        optimizer = keras.optimizers.SGD(0.05, momentum=0.9)
    loop.train(model, optimizer, LOSS, toy_data(), strategy=default_strategy, epochs=3, hooks=[install])
    kernel = keras.ops.convert_to_numpy(model.get_layer("conv2").kernel)
    assert np.all(kernel[..., :3] == 0) and np.all(kernel[..., 3:] != 0)


def test_hooks_get_epoch_logs_in_order_and_can_stop_training(default_strategy):
    seen = []

    class Recorder(loop.Hook):
        def on_epoch_end(self, epoch, logs=None):
            seen.append((epoch, dict(logs)))
            self.model.stop_training = epoch == 1

        def set_model(self, model):
            self.model = model

    history = keras.callbacks.History()
    hooks = [lambda epoch, logs: logs.update(extra=epoch), Recorder(), history]
    _, _, losses = train_fresh(default_strategy, hooks=hooks, epochs=5, log_every_steps=2)
    assert len(losses) == 2 and [e for e, _ in seen] == [0, 1]
    seconds = seen[1][1].pop("seconds")  # the epoch's wall time
    assert seen[1][1] == {"loss": losses[1], "penalty": 0.0, "extra": 1}
    assert 0 < seconds < 60
    assert history.history["loss"] == losses


def test_epoch_logs_report_the_penalty_share_of_the_loss(default_strategy):
    """The console shows the data loss and the penalty apart, so both must reach the epoch logs."""
    seen = []
    hooks = [lambda epoch, logs: seen.append(dict(logs))]
    model, _, losses = train_fresh(default_strategy, strength=1e-2, hooks=hooks, epochs=1)
    penalty = seen[0]["penalty"]
    assert 0 < penalty < losses[0]
    # The penalty of the final weights is close to the epoch's mean penalty (a few SGD steps apart).
    final = float(sum(keras.ops.convert_to_numpy(term) for term in model.losses))
    assert penalty == pytest.approx(final, rel=0.5)


def test_progress_bar_ends_each_epoch_on_its_mean_data_loss_and_penalty(default_strategy, capsys):
    seen = []
    hooks = [lambda epoch, logs: seen.append(dict(logs))]
    train_fresh(default_strategy, strength=1e-2, hooks=hooks, epochs=2, progress=True)
    # The bar redraws itself with carriage returns; each epoch's last drawing is the one at 3/3 steps.
    drawings = re.split(r"[\r\n]", capsys.readouterr().out)
    finals = [d for d in drawings if "3/3" in d and "loss:" in d]
    assert len(finals) == 2 and len(seen) == 2
    for line, logs in zip(finals, seen):
        assert f"loss: {logs['loss'] - logs['penalty']:.4f}" in line, line
        assert f"penalty: {logs['penalty']:.4f}" in line, line


def test_is_time_counts_steps_from_one():
    assert [s for s in range(1, 7) if loop.is_time(s, 3)] == [3, 6]
    assert not any(loop.is_time(s, None) for s in range(1, 7))


def test_steps_per_epoch_draws_from_one_iterator_across_epochs(default_strategy):
    _, optimizer, losses = train_fresh(default_strategy, dataset=toy_data().repeat(), epochs=2, steps_per_epoch=5)
    assert len(losses) == 2 and int(optimizer.iterations.numpy()) == 10
    with pytest.raises(ValueError, match="ran out after 2 steps of epoch 1 with steps_per_epoch=4"):
        train_fresh(default_strategy, dataset=toy_data().repeat(2), epochs=2, steps_per_epoch=4)


def test_train_rejects_what_it_cannot_run(default_strategy):
    model = small_cnn()  # created outside the strategy's scope
    optimizer = keras.optimizers.SGD(0.1)
    one_device = tf.distribute.OneDeviceStrategy("/cpu:0")
    with pytest.raises(ValueError, match=r"conv1/kernel.*strategy.scope\(\)"):
        loop.train(model, optimizer, LOSS, toy_data(), strategy=one_device, epochs=1)
    with pytest.raises(ValueError, match="loss_fn must return one loss per example"):
        scalar_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        loop.train(model, optimizer, scalar_loss, toy_data(), strategy=default_strategy, epochs=1)
    with pytest.raises(ValueError, match="epochs=-1"):
        loop.train(model, optimizer, LOSS, toy_data(), strategy=default_strategy, epochs=-1)
    with pytest.raises(TypeError, match="got 42"):
        loop.as_hook(42)


# -- (d) strategy selection ---------------------------------------------------------------------------------
def test_make_strategy_rejects_an_unknown_kind_naming_it():
    with pytest.raises(ValueError, match="kind='mirror'"):
        distribute.make_strategy("mirror")


def test_auto_kind_reads_the_cluster_from_tf_config():
    two = json.dumps({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 0}})
    one = json.dumps({"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 0}})
    assert distribute.auto_kind({"TF_CONFIG": two}) == "multi_worker"
    assert distribute.auto_kind({"TF_CONFIG": one}) == "mirrored"
    assert distribute.auto_kind({}) == "mirrored"
    with pytest.raises(ValueError, match="TF_CONFIG="):
        distribute.workers_in_tf_config({"TF_CONFIG": "not json"})


def test_default_kind_is_the_one_replica_default_strategy():
    strategy = distribute.make_strategy("default")
    assert strategy is tf.distribute.get_strategy() and strategy.num_replicas_in_sync == 1
    with tf.distribute.OneDeviceStrategy("/cpu:0").scope():
        with pytest.raises(ValueError, match="outside any strategy.scope"):
            distribute.make_strategy("default")


if __name__ == "__main__":
    if sys.argv[1] == "scenarios":
        run_scenarios()
    elif sys.argv[1] == "worker":
        run_worker(int(sys.argv[2]), sys.argv[3:])
    else:
        raise SystemExit(f"usage: {sys.argv[0]} scenarios | worker INDEX PORT PORT; got {sys.argv[1:]}")

"""A run's results are never lost or silently replaced: workdir identity and lock, checkpoint fallback,
validation before anything is written, kills at every write, loud results that are worse than the start.

The end-to-end runs use the smoke config on 128 (or 64) Fashion-MNIST images; kills at the write points
come from ``SPARSE_KERAS_KILL_AT`` (a real SIGKILL in a subprocess) or, in-process, from the same hook
raising instead.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest

from sparse_keras.training import workdir as workdir_lib

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SMOKE = os.path.join(REPO, "configs", "smoke", "fashion_mnist.py")
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO)


# -- workdir identity and lock (no TensorFlow) ---------------------------------------------------------------

def _config(**changes):
    config = {"epochs": 1, "method": {"name": "admm", "mu": 0.5}, "progress": True}
    config.update(changes)
    return config


def test_a_workdir_of_another_config_is_refused_naming_the_keys(tmp_path):
    with workdir_lib.claim(str(tmp_path), _config()):
        (tmp_path / "model.keras").write_text("trained")
    with pytest.raises(workdir_lib.WorkdirError, match=r"(?s)epochs: 1 \(workdir\) != 3.*method.mu: 0.5"):
        with workdir_lib.claim(str(tmp_path), _config(epochs=3, method={"name": "admm", "mu": 2.0})):
            pass
    assert (tmp_path / "model.keras").read_text() == "trained"
    with workdir_lib.claim(str(tmp_path), _config(progress=False), ignore=("progress",)) as resumed:
        assert resumed  # a cosmetic key may change
    with workdir_lib.claim(str(tmp_path), _config(epochs=3), overwrite=True) as resumed:
        assert not resumed and not (tmp_path / "model.keras").exists()
    assert json.loads((tmp_path / "config.json").read_text())["epochs"] == 3


def test_a_used_workdir_without_config_json_is_refused(tmp_path):
    (tmp_path / "report.json").write_text("{}")
    with pytest.raises(workdir_lib.WorkdirError, match="already holds files"):
        with workdir_lib.claim(str(tmp_path), _config()):
            pass


def test_a_second_live_process_is_refused_and_a_dead_ones_lock_is_taken_over(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from sparse_keras.training import workdir as w\n"
         "with w.claim(sys.argv[1], {'a': 1}):\n print('held', flush=True); time.sleep(60)", str(tmp_path)],
        cwd=REPO, env=ENV, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        second = subprocess.run(
            [sys.executable, "-c", "import sys; from sparse_keras.training import workdir as w\n"
             "with w.claim(sys.argv[1], {'a': 1}): pass", str(tmp_path)],
            cwd=REPO, env=ENV, capture_output=True, text=True, timeout=120)
        assert second.returncode != 0 and f"in use by pid {holder.pid}" in second.stderr
    finally:
        holder.kill()
        holder.wait()
    assert json.loads((tmp_path / ".lock").read_text())["pid"] == holder.pid  # SIGKILL left it behind
    with workdir_lib.claim(str(tmp_path), {"a": 1}) as resumed:
        assert resumed and json.loads((tmp_path / ".lock").read_text())["pid"] == os.getpid()
    assert not (tmp_path / ".lock").exists()  # released


# -- checkpoint fallback --------------------------------------------------------------------------------------

def _checkpointer(directory):
    import keras

    from sparse_keras.training import checkpoint

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="dense")], name="net")
    return checkpoint.Checkpointer(str(directory), model, keras.optimizers.SGD(0.1)), model


def _three_checkpoints(directory):
    checkpointer, model = _checkpointer(directory)
    for epoch in range(3):
        model.layers[0].kernel.assign(np.full((4, 3), float(epoch), "float32"))
        checkpointer.save(0, epoch + 1, 0)


def _truncate(path):
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


@pytest.mark.tf_only
@pytest.mark.parametrize("damaged", ["ckpt-3.index", "ckpt-3.data-00000-of-00001", "state-3.npz"])
def test_a_truncated_newest_checkpoint_is_named_and_the_previous_one_restored(damaged, tmp_path, capsys):
    _three_checkpoints(tmp_path)
    _truncate(tmp_path / damaged)
    checkpointer, model = _checkpointer(tmp_path)
    assert checkpointer.saved_position() == (0, 2, 0)
    assert checkpointer.restore() == (0, 2, 0)
    assert float(model.layers[0].kernel.numpy()[0, 0]) == 1.0
    assert damaged in capsys.readouterr().out
    checkpointer.save(0, 3, 0)  # and it goes on from there
    assert checkpointer.latest.endswith("ckpt-4")


@pytest.mark.tf_only
def test_no_intact_checkpoint_is_a_clear_error_naming_every_file(tmp_path):
    from sparse_keras.training import checkpoint

    _three_checkpoints(tmp_path)
    for n in (1, 2, 3):
        _truncate(tmp_path / f"state-{n}.npz")
    with pytest.raises(checkpoint.CheckpointError, match=r"(?s)state-3.npz.*state-2.npz.*state-1.npz.*--overwrite"):
        _checkpointer(tmp_path)[0].saved_position()


# -- the library's own procedures -----------------------------------------------------------------------------

def test_admm_in_model_fit_stops_on_non_finite_values_naming_the_layer():
    import keras

    from sparse_keras.sparsity.admm import ADMM

    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, name="conv"), keras.layers.Flatten(),
                              keras.layers.Dense(2)])
    model.compile("sgd", "mse")
    x, y = np.random.rand(32, 8, 8, 1).astype("float32"), np.random.rand(32, 2).astype("float32")
    with pytest.raises(FloatingPointError, match=r"conv/kernel are not finite \(mu=1e\+300, rho=1e-300"):
        model.fit(x, y, epochs=3, callbacks=[ADMM(mu=1e300, rho=1e-300)], verbose=0)


def test_regularize_warns_when_no_kernel_takes_the_regularizer():
    import keras

    import sparse_keras as sk

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])  # only the classifier, which is left out
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sk.regularize(model, sk.KernelGroupLasso(1e-3))
    assert any("nothing was attached" in str(w.message) for w in caught)


# -- validation before anything is written --------------------------------------------------------------------

def _smoke(method="admm", **overrides):
    from configs.smoke import fashion_mnist

    config = fashion_mnist.get_config(method)
    config.update_from_flattened_dict(overrides)  # dotted keys, as on the command line
    return config


BAD = [
    ("ssr", {"method.tau": float("inf")}, "config.method.tau must be a finite number >= 0, got inf"),
    ("ssr", {"method.kernel_strength": float("inf")}, "config.method.kernel_strength must be a finite number"),
    ("admm", {"optimizer.learning_rate": float("inf")}, "config.optimizer.learning_rate must be a finite positive"),
    ("admm", {"data.train_examples": 100000}, "config.data.train_examples=100000 is larger than the 60000"),
    ("admm", {"seed": -7}, "config.seed must be a non-negative integer, got -7"),
    ("lrsd", {"model.kwargs.rank": -3}, r"config.model.kwargs=.*'rank': -3"),
    ("admm", {"data.batch_size": 1024}, "config.data.batch_size=1024 is larger than the 512 training examples"),
    ("none", {"epochs": 0}, "config.epochs must be a positive integer, got 0"),
    ("none", {"method.name": "lst"}, "config.method.name='lst' needs a model with LST layers"),
    ("none", {"method.name": "csc"}, "config.method.name='csc' needs a model with CSC layers"),
    ("none", {"data.normalize_std": 0.0}, "config.data.normalize_std must be None or finite numbers > 0"),
]


@pytest.mark.tf_only
@pytest.mark.parametrize("method, overrides, message", BAD, ids=[next(iter(o)) + "=" + str(next(iter(o.values())))
                                                                 for _, o, _ in BAD])
def test_bad_values_fail_naming_the_key_before_the_workdir_exists(method, overrides, message, tmp_path):
    from sparse_keras.training import experiment

    workdir = tmp_path / "never"
    with pytest.raises(workdir_lib.RunError, match=message):
        experiment.run(_smoke(method, **overrides), str(workdir))
    assert not workdir.exists()


@pytest.mark.tf_only
def test_data_dir_pointing_at_a_file_is_named(tmp_path):
    from sparse_keras.training import experiment

    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(workdir_lib.RunError, match="config.data.data_dir=.*is a file, not a directory"):
        experiment.run(_smoke("none", **{"data.data_dir": str(blocker)}), str(tmp_path / "never"))
    assert not (tmp_path / "never").exists()


# -- command line --------------------------------------------------------------------------------------------

def _binary(*args, env=ENV):
    return subprocess.run([sys.executable, "-m", "train.train", f"--config={SMOKE}:none", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.tf_only
@pytest.mark.parametrize("key, near", [("foo", None), ("method.kernel_strenght", "method.kernel_strength")])
def test_an_unknown_config_key_is_named_with_the_nearest_valid_one(key, near, tmp_path):
    config = "ssr" if "kernel" in key else "none"
    result = subprocess.run([sys.executable, "-m", "train.train", f"--config={SMOKE}:{config}",
                             f"--workdir={tmp_path / 'w'}", f"--config.{key}=1"], cwd=REPO, env=ENV,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert f"config.{key} is not a key" in result.stderr and "Traceback" not in result.stderr
    if near:
        assert f"did you mean config.{near}?" in result.stderr
    assert not (tmp_path / "w").exists()


@pytest.mark.tf_only
@pytest.mark.slow
def test_a_config_error_prints_the_message_alone_and_exits_2_traceback_with_verbosity(tmp_path):
    quiet = _binary(f"--workdir={tmp_path / 'w'}", "--config.optimizer.learning_rate=inf")
    assert quiet.returncode == 2 and "Traceback" not in quiet.stderr
    assert "Error: config.optimizer.learning_rate must be a finite positive number, got inf" in quiet.stderr
    loud = _binary(f"--workdir={tmp_path / 'w'}", "--config.optimizer.learning_rate=inf", "--verbosity=1")
    assert loud.returncode != 0 and "Traceback" in loud.stderr
    assert not (tmp_path / "w").exists()


def test_fields_that_default_to_none_are_settable_from_the_command_line():
    program = ("import sys; from absl import flags; from ml_collections import config_flags\n"
               "c = config_flags.DEFINE_config_file('config')\n"
               "flags.FLAGS(sys.argv)\n"
               "print(c.value.data.normalize_std, c.value.data.normalize_mean, c.value.method.guard)")
    result = subprocess.run(
        [sys.executable, "-c", program, f"--config={SMOKE}:admm", "--config.data.normalize_std=(0.25, 0.5)",
         "--config.data.normalize_mean=0.5", "--config.method.guard=0.3"],
        cwd=REPO, env=ENV, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["(0.25,", "0.5)", "0.5", "0.3"]


# -- end to end: rerun, another config, lock, kills at every write, worse-than-initial ------------------------

def _run(workdir, method="none", kill_at=None, **overrides):
    """``experiment.run`` in this process on 128 images; ``kill_at`` makes that write point raise (a crash)."""
    import keras

    from sparse_keras.training import experiment

    class Killed(BaseException):
        pass

    def kill_point(name):
        if name == kill_at:
            raise Killed(name)

    keras.backend.clear_session()
    config = _smoke(method, **{"data.train_examples": 128, "checkpoint_every_steps": 100, **overrides})
    original, workdir_lib.kill_point = workdir_lib.kill_point, kill_point
    try:
        return experiment.run(config, str(workdir))
    except Killed:
        return None
    finally:
        workdir_lib.kill_point = original


def _outputs(workdir):
    """What a user takes away from a run: the exported weights, the reports, the SavedModel's answers."""
    import keras
    import tensorflow as tf

    x = np.random.default_rng(0).random((4, 28, 28, 1)).astype("float32")
    loaded = tf.saved_model.load(os.path.join(workdir, "saved_model"))  # kept: serve() uses its variables
    served = loaded.serve(tf.constant(x))
    report = json.loads(open(os.path.join(workdir, "report.json")).read())
    for row in report["history"]:
        assert row.pop("seconds") > 0  # wall time: the only figure two runs may not share
    markdown = open(os.path.join(workdir, "report.md")).read()
    markdown = re.sub(r"% \| \d+ \|$", "% | (seconds) |", markdown, flags=re.M)
    markdown, totals = re.subn(r"epochs took \d+ min \d+ s", "epochs took (time)", markdown)
    assert totals == 1
    return {
        "weights": keras.saving.load_model(os.path.join(workdir, "model.keras"), compile=False).get_weights(),
        "served": np.asarray(served),
        "report.json": report,
        "report.md": markdown,
        "architecture.md": open(os.path.join(workdir, "architecture.md")).read(),
    }


def _assert_same(got, expected):
    assert len(got["weights"]) == len(expected["weights"])
    for a, b in zip(got["weights"], expected["weights"]):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(got["served"], expected["served"], rtol=1e-6, atol=1e-6)
    for key in ("report.json", "report.md", "architecture.md"):
        assert got[key] == expected[key], key


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("uninterrupted")
    _run(workdir)
    return workdir, _outputs(workdir)


WRITE_POINTS = ["trained", "architecture", "model.keras", "saved_model", "saved_model:staged", "report", "finished"]


@pytest.mark.tf_only
@pytest.mark.slow
def test_a_rerun_of_a_finished_run_leaves_its_trained_results_alone(finished_run):
    workdir, expected = finished_run
    stamps = {name: os.path.getmtime(workdir / name) for name in ("model.keras", "report.json", "saved_model")}
    _run(workdir)
    assert {name: os.path.getmtime(workdir / name) for name in stamps} == stamps
    _assert_same(_outputs(workdir), expected)


@pytest.mark.tf_only
@pytest.mark.slow
def test_another_config_in_a_finished_workdir_is_refused_and_changes_nothing(finished_run):
    workdir, expected = finished_run
    with pytest.raises(workdir_lib.WorkdirError, match=r"epochs: 1 \(workdir\) != 3 \(now\)"):
        _run(workdir, epochs=3)
    _assert_same(_outputs(workdir), expected)


@pytest.mark.tf_only
@pytest.mark.slow
def test_kills_at_every_write_then_reruns_end_with_the_uninterrupted_files(finished_run, tmp_path):
    """Each rerun is killed one write later; each resumes from the trained state, never from a fresh model."""
    _, expected = finished_run
    for point in WRITE_POINTS:
        _run(tmp_path, kill_at=point)
        assert workdir_lib.finished(str(tmp_path)) is None, point
    _run(tmp_path)
    assert workdir_lib.finished(str(tmp_path)) is not None
    _assert_same(_outputs(tmp_path), expected)
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".tmp")]


@pytest.mark.tf_only
@pytest.mark.slow
def test_a_sigkill_while_the_savedmodel_is_swapped_in_then_a_rerun_recovers(finished_run, tmp_path, capsys):
    """A real SIGKILL (lock and temporaries left behind) in a run whose training had ended, then a rerun."""
    workdir, expected = finished_run
    shutil.copytree(workdir, tmp_path / "w")
    os.remove(tmp_path / "w" / workdir_lib.FINISHED_FILE)  # killed before it finished, trained state checkpointed
    killed = _binary(f"--workdir={tmp_path / 'w'}", "--config.data.train_examples=128",
                     "--config.checkpoint_every_steps=100", env=dict(ENV, **{workdir_lib.KILL_ENV: "saved_model:staged"}))
    assert killed.returncode == -9 and (tmp_path / "w" / ".lock").exists(), killed.stderr[-2000:]
    assert [name for name in os.listdir(tmp_path / "w") if name.startswith(".tmp-saved_model")]
    _run(tmp_path / "w")
    out = capsys.readouterr().out
    assert "Taking over" in out and "Resuming" in out
    _assert_same(_outputs(tmp_path / "w"), expected)
    assert not [name for name in os.listdir(tmp_path / "w") if name.startswith(".tmp") or name == ".lock"]


@pytest.mark.tf_only
@pytest.mark.slow
def test_a_run_that_prunes_everything_says_so_loudly_in_its_report(tmp_path):
    report = _run(tmp_path, "admm", **{"method.mu": 1e30, "data.train_examples": 64})
    warnings_ = report["warnings"]
    assert any("6 of 6 layers pruned to width 0 (conv1, conv2, conv3, conv4, conv5, classifier)" in w for w in warnings_), warnings_
    assert "**WARNING: 6 of 6 layers pruned to width 0" in (tmp_path / "report.md").read_text()

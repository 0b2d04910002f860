r"""Run integrity, measured: bad inputs a hostile but fair user would try, and kills at every write.

  python -m benchmarks.fault_matrix [--kills] [--workdir=/tmp/fault_matrix]

Bad inputs: every case goes through the real entry point (``sparse_keras.training.experiment.run`` for config
values, the library call for API inputs, the binary for command-line keys). A config case is *handled* when it raises
:class:`~sparse_keras.training.workdir.RunError` naming its config key before the workdir exists (the
workdir claim is replaced by a tripwire, so an unhandled case stops there instead of training); an API case
when it raises (or warns) naming the argument or layer; a command-line case when the binary exits 2 with
the message alone.

Kill points (``--kills``): a run of the smallest smoke config is SIGKILLed (``SPARSE_KERAS_KILL_AT``) at each
write after training, then the plain command is run again; *handled* when the rerun's files (weights, the
SavedModel's answers, reports) equal those of an uninterrupted run. About a minute per point on 2 cores.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import warnings

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOKE = os.path.join(REPO, "configs", "smoke", "fashion_mnist.py")
INF, NAN = float("inf"), float("nan")

# (smoke method, {config key: bad value}, the key the message must name)
NUMBERS = {
    "seed": [-7, 1.5, "x", True],
    "epochs": [0, -1, 1.5],
    "data.batch_size": [0, -1, 1024, 1.5],
    "data.train_examples": [0, -5, 100000, 2.5],
    "data.normalize_std": [0.0, -1.0, INF, "x"],
    "data.normalize_mean": [NAN, INF],
    "optimizer.learning_rate": [0.0, -1.0, INF, NAN, "x"],
    "optimizer.momentum": [-0.1, 1.0, INF, NAN],
    "optimizer.weight_decay": [-1.0, INF, NAN],
    "schedule.decay": [0.0, 1.5, INF],
    "schedule.warmup_epochs": [-1.0, "x"],
    "schedule.boundaries": [(2.0, 1.0), (-1.0,)],
    "checkpoint_every_steps": [0, -1],
}
CHOICES = {
    "data.name": ["imagenet_fake"],
    "model.name": ["resnet9000"],
    "optimizer.name": ["rmsprop2"],
    "schedule.name": ["sawtooth"],
    "mixed_precision": ["float8"],
    "strategy": ["tpu9"],
    "method.name": ["prune", "lst", "csc"],
}
METHOD_KEYS = {
    "ssr": {"method.kernel_strength": [INF, -1.0, NAN], "method.size_strength": [INF, -1.0], "method.tau": [INF, -1.0, NAN],
            "method.size_scheme": ["square"], "method.finetune_epochs": [-1, 1.5]},
    "admm": {"method.mu": [0.0, -1.0, INF, NAN], "method.rho": [0.0, -1.0, INF], "method.block": ["row"],
             "method.penalty": ["l3"], "method.guard": [0.0, 1.5], "method.admm_epochs": [-1], "method.update_every": [0],
             "method.finetune_epochs": [-1]},
    "lrsd": {"method.alpha": [0.0, 1.5, INF], "method.finetune_epochs": [-1], "model.kwargs.rank": [-3, 0],
             "model.kwargs.lrsd": [False]},
}


def config_cases():
    cases = []
    for key, values in {**NUMBERS, **CHOICES}.items():
        cases += [("none" if key == "method.name" else "admm", {key: v}, key) for v in values]
    for method, keys in METHOD_KEYS.items():
        for key, values in keys.items():
            cases += [(method, {key: v}, "model.kwargs" if key.startswith("model.kwargs.") else key) for v in values]
    cases.append(("admm", {"method.rho": 100.0}, "config.optimizer.learning_rate * config.method.rho"))
    cases.append(("none", {"data.data_dir": __file__}, "data.data_dir"))
    return cases


class _Tripwire(Exception):
    """Raised where the workdir would be claimed: the case got past every check."""


def run_config_case(method, overrides, key, root):
    from configs.smoke import fashion_mnist
    from sparse_keras.training import workdir as workdir_lib
    from sparse_keras.training import experiment

    import keras

    keras.backend.clear_session()
    config = fashion_mnist.get_config(method)
    for dotted, value in overrides.items():
        node = config
        *parents, leaf = dotted.split(".")
        for parent in parents:
            node = node[parent]
        try:
            node[leaf] = value
        except TypeError as error:  # the config's own field types (the command line fails the same way)
            return True, f"refused by the config's field type: {str(error)[:90]}"
    workdir = tempfile.mkdtemp(dir=root)
    os.rmdir(workdir)

    def tripwire(*args, **kwargs):
        raise _Tripwire()

    original, workdir_lib.claim = workdir_lib.claim, tripwire
    try:
        experiment.run(config, workdir)
        return False, "trained"
    except _Tripwire:
        return False, "passed every check"
    except workdir_lib.RunError as error:
        named = key in str(error) or f"config.{key}" in str(error)
        return named and not os.path.exists(workdir), str(error).splitlines()[0][:110]
    except Exception as error:  # noqa: BLE001 (an unhandled crash is what this counts)
        return False, f"{type(error).__name__}: {str(error)[:100]}"
    finally:
        workdir_lib.claim = original


def api_cases():
    """(name, callable that must raise or warn, text the message must hold)."""
    import keras
    import numpy as np

    import sparse_keras as sk
    from sparse_keras.sparsity.admm import ADMM

    def fit(**kwargs):
        model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, name="conv"),
                                  keras.layers.Flatten(), keras.layers.Dense(2)])
        model.compile("sgd", "mse")
        x, y = np.random.rand(16, 8, 8, 1).astype("float32"), np.random.rand(16, 2).astype("float32")
        model.fit(x, y, epochs=2, callbacks=[ADMM(**kwargs)], verbose=0)

    def dense_only():
        return keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])

    cases = [(f"ADMM({k}={v!r})", (lambda k=k, v=v: ADMM(**{k: v})), k) for k, v in [
        ("penalty", "l3"), ("mu", -1.0), ("mu", INF), ("mu", NAN), ("rho", 0.0), ("rho", INF), ("block", "row"),
        ("guard", 2.0), ("update_every", 0), ("stopping", "x"), ("epsilon", -1.0)]]
    cases += [
        ("ADMM(mu=1e300, rho=1e-300) in model.fit", lambda: fit(mu=1e300, rho=1e-300), "conv/kernel"),
        ("regularize(dense-only model) warns", lambda: sk.regularize(dense_only(), sk.KernelGroupLasso(1e-3)),
         "nothing was attached"),
        ("regularize(model, None)", lambda: sk.regularize(dense_only(), None), "regularizer"),
    ]
    return cases


def run_api_case(function, text):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            function()
        except Exception as error:  # noqa: BLE001
            return text in str(error), f"{type(error).__name__}: {str(error)[:100]}"
    said = [str(w.message) for w in caught if text in str(w.message)]
    return bool(said), (f"warning: {said[0][:100]}" if said else "accepted silently")


def checkpoint_cases(root):
    """A truncated .index, .data, state-N.npz (fallback to the previous), and no intact checkpoint."""
    import keras
    import numpy as np

    from sparse_keras.training import checkpoint

    def build(directory):
        keras.backend.clear_session()
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="dense")], name="net")
        return checkpoint.Checkpointer(directory, model, keras.optimizers.SGD(0.1))

    rows = []
    for damaged in ("ckpt-3.index", "ckpt-3.data-00000-of-00001", "state-3.npz", "all state-*.npz"):
        directory = tempfile.mkdtemp(dir=root)
        saver = build(directory)
        for epoch in range(3):
            saver.model.layers[0].kernel.assign(np.full((4, 3), float(epoch), "float32"))
            saver.save(0, epoch + 1, 0)
        names = [f"state-{n}.npz" for n in (1, 2, 3)] if damaged.startswith("all") else [damaged]
        for name in names:
            path = os.path.join(directory, name)
            with open(path, "r+b") as f:
                f.truncate(os.path.getsize(path) // 2)
        try:
            position = build(directory).restore()
            ok = position == (0, 2, 0) and not damaged.startswith("all")
            rows.append((f"truncated {damaged}", ok, f"resumed at {position}"))
        except checkpoint.CheckpointError as error:
            rows.append((f"truncated {damaged}", damaged.startswith("all") and "state-1.npz" in str(error),
                         str(error)[:110]))
    return rows


CLI = [
    (["--config.foo=1"], "config.foo is not a key"),
    (["--config.method.kernel_strenght=1"], "did you mean config.method.kernel_strength?"),
    (["--config.data.batchsize=1"], "did you mean config.data.batch_size?"),
    (["--config.optimizer.learning_rate=inf"], "Error: config.optimizer.learning_rate must be a finite"),
]


def run_cli_case(args, text, root):
    method = "ssr" if "kernel" in args[0] else "admm"
    workdir = os.path.join(root, "cli")
    result = subprocess.run([sys.executable, "-m", "train.train", f"--config={SMOKE}:{method}",
                             f"--workdir={workdir}", *args], cwd=REPO, capture_output=True, text=True, timeout=600)
    ok = result.returncode == 2 and text in result.stderr and "Traceback" not in result.stderr
    return ok and not os.path.exists(workdir), (result.stderr.strip().splitlines() or ["(nothing)"])[-1][:110]


KILL_POINTS = ["trained", "architecture", "model.keras", "saved_model", "saved_model:staged", "report", "finished"]
RUN = ["--config.data.train_examples=128", "--config.checkpoint_every_steps=100"]


def _binary(workdir, kill_at=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("SPARSE_KERAS_KILL_AT", None)
    if kill_at:
        env["SPARSE_KERAS_KILL_AT"] = kill_at
    return subprocess.run([sys.executable, "-m", "train.train", f"--config={SMOKE}:none", f"--workdir={workdir}", *RUN],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=900)


def _files(workdir):
    import keras
    import numpy as np
    import tensorflow as tf

    x = np.random.default_rng(0).random((4, 28, 28, 1)).astype("float32")
    loaded = tf.saved_model.load(os.path.join(workdir, "saved_model"))  # kept: serve() uses its variables
    served = np.asarray(loaded.serve(tf.constant(x)))
    weights = keras.saving.load_model(os.path.join(workdir, "model.keras"), compile=False).get_weights()
    texts = {name: open(os.path.join(workdir, name)).read() for name in ("report.json", "report.md", "architecture.md")}
    return weights, served, texts


def _same(a, b):
    import numpy as np

    (wa, sa, ta), (wb, sb, tb) = a, b
    return (len(wa) == len(wb) and all(np.allclose(x, y, rtol=1e-6, atol=1e-7) for x, y in zip(wa, wb))
            and np.allclose(sa, sb, rtol=1e-6, atol=1e-6) and ta == tb)


def kill_cases(root):
    """SIGKILL at each write point of a finished training, then the plain command; files vs uninterrupted."""
    baseline = os.path.join(root, "uninterrupted")
    assert _binary(baseline).returncode == 0
    expected = _files(baseline)
    trained = os.path.join(root, "trained")  # killed right after training: every other point starts from a copy
    first = _binary(trained, "trained")
    rows = []
    for point in KILL_POINTS:
        workdir = os.path.join(root, f"kill-{point.replace(':', '-')}")
        if point == "trained":
            killed = first
            shutil.copytree(trained, workdir)
        else:
            shutil.copytree(trained, workdir)
            killed = _binary(workdir, point)
        marked = os.path.exists(os.path.join(workdir, "finished.json"))  # a killed run must not look finished
        rerun = _binary(workdir)
        ok = killed.returncode == -9 and not marked and rerun.returncode == 0 and _same(_files(workdir), expected)
        rows.append((f"SIGKILL before `{point}`", ok, f"killed rc {killed.returncode}, rerun rc {rerun.returncode}, "
                     f"{'resumed' if 'Resuming' in rerun.stdout else 'did not resume'}, files "
                     f"{'equal' if ok else 'differ'} to the uninterrupted run's"))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", action="store_true", help="also the kill points (about a minute each)")
    parser.add_argument("--workdir", default=None, help="scratch directory (default: a temporary one)")
    args = parser.parse_args()
    root = args.workdir or tempfile.mkdtemp(prefix="fault_matrix-")
    os.makedirs(root, exist_ok=True)
    sections = {"config value": [], "API input": [], "checkpoint": [], "command line": [], "kill point": []}
    for method, overrides, key in config_cases():
        ok, said = run_config_case(method, overrides, key, root)
        (dotted, value), = overrides.items()
        sections["config value"].append((f"`{method}`: {dotted}={value!r}", ok, said))
    for name, function, text in api_cases():
        sections["API input"].append((name, *run_api_case(function, text)))
    sections["checkpoint"] = checkpoint_cases(root)
    for cli_args, text in CLI:
        sections["command line"].append((" ".join(cli_args), *run_cli_case(cli_args, text, root)))
    if args.kills:
        sections["kill point"] = kill_cases(root)
    print("| kind | tried | handled |\n|---|---:|---:|")
    for kind, rows in sections.items():
        if rows:
            print(f"| {kind} | {len(rows)} | {sum(ok for _, ok, _ in rows)} |")
    bad = [r for rows in list(sections.values())[:4] for r in rows]
    print(f"| **bad inputs, all** | **{len(bad)}** | **{sum(ok for _, ok, _ in bad)}** |")
    print("\n| case | handled | what happened |\n|---|---|---|")
    for rows in sections.values():
        for name, ok, said in rows:
            print(f"| {name} | {'yes' if ok else '**no**'} | {said.replace('|', '/')} |")
    with open(os.path.join(root, "fault_matrix.json"), "w") as f:
        json.dump({k: [list(r) for r in v] for k, v in sections.items()}, f, indent=2)


if __name__ == "__main__":
    main()

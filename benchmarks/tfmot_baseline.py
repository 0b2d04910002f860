"""tfmot magnitude pruning of ``admm_cnn``, the peer baseline of ``benchmarks.admm_vs_baselines``.

tfmot 0.8.1 works with legacy Keras 2 only, so this runs as its own process under ``TF_USE_LEGACY_KERAS=1``
and builds ``admm_cnn`` again from ``tf_keras`` layers (same layer names and shapes)::

  TF_USE_LEGACY_KERAS=1 python -m benchmarks.tfmot_baseline --data inputs.npz --target_sparsity 0.6

``benchmarks.admm_vs_baselines`` starts it with an ``.npz`` holding the very examples and dense
pre-trained weights the other methods start from (``x_train``, ``y_train``, ``x_test``, ``y_test`` and
``w:<layer>:<index>``), so all methods are compared from one starting point on one data subset. It prints
one JSON line with its results, the last line of stdout. Needs the ``tfmot`` extra
(``pip install -e .[tfmot]``); ``sparse_keras`` never imports tfmot or this module's TensorFlow parts.

The numpy helpers at the top (:func:`filter_stats`, :func:`median_latency_ms`) import nothing and are
shared with the Keras 3 side, so both processes count filters and time inference the same way.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

CONVS = (("conv1", 96), ("conv2", 128), ("conv3", 256), ("conv4", 64))  # admm_paper._CNN_CONVS
FC1_UNITS = 256
SPARSIFIED = ("conv1", "conv2", "conv3", "conv4", "fc1")  # admm_paper.SPARSIFIED["admm_cnn"]
LATENCY_BATCHES = (1, 64)


# -- shared numpy helpers -------------------------------------------------------------------------------
def filter_stats(kernels):
    """Zero 2-D filters of ``{layer name: kernel}``; a Dense "filter" is one output unit (ADMM's block).

    A conv kernel ``(h, w, in, out)`` has ``in * out`` filters ``W_ij``; one is zero when all its ``h*w``
    weights are exactly zero.
    """
    per_layer, zero_weights, weights = {}, 0, 0
    for name, kernel in kernels.items():
        kernel = np.asarray(kernel)
        axes = tuple(range(kernel.ndim - 2)) if kernel.ndim > 2 else (0,)
        zero = np.all(kernel == 0, axis=axes)
        per_layer[name] = {"zero": int(zero.sum()), "filters": int(zero.size)}
        zero_weights += int((kernel == 0).sum())
        weights += int(kernel.size)
    zero_total = sum(v["zero"] for v in per_layer.values())
    total = sum(v["filters"] for v in per_layer.values())
    return {
        "zero_filters": per_layer,
        "zero_filters_total": zero_total,
        "filters_total": total,
        "filters_removed_pct": 100.0 * zero_total / max(total, 1),
        "weight_sparsity": zero_weights / max(weights, 1),
    }


def param_counts(arrays):
    """``(non-zero, total)`` entries over a list of weight arrays."""
    return int(sum(np.count_nonzero(a) for a in arrays)), int(sum(np.size(a) for a in arrays))


def median_latency_ms(predict, input_shape, batch_sizes=LATENCY_BATCHES, warmup=3, repeats=30):
    """Median wall time in ms of ``predict(x)`` per batch size, after ``warmup`` untimed calls."""
    rng = np.random.default_rng(0)
    result = {}
    for batch in batch_sizes:
        x = rng.random((batch, *input_shape), dtype=np.float32)
        for _ in range(warmup):
            predict(x)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            predict(x)
            times.append(1e3 * (time.perf_counter() - start))
        result[str(batch)] = statistics.median(times)
    return result


def run_legacy_keras(module, flags):
    """Runs ``python -m <module> <flags>`` under legacy Keras 2 (tfmot's world) from the repository root.

    Returns ``(result, error)``: the JSON of the last stdout line starting with ``{``, or ``None`` and the exit
    code with the end of stderr.
    """
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2",
           "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-m", module, *flags], cwd=root, env=env, capture_output=True, text=True,
                          check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        return None, f"exit {done.returncode}: {done.stderr.strip()[-3000:]}"
    return json.loads(lines[-1]), None


# -- the tf_keras side ----------------------------------------------------------------------------------
def build_admm_cnn(tf_keras, input_shape, num_classes):
    """``sparse_keras.models.admm_paper.admm_cnn`` (no dropout) rebuilt from ``tf_keras`` layers."""
    layers = tf_keras.layers
    inputs = tf_keras.Input(shape=input_shape, name="image")
    x = inputs
    for index, (name, filters) in enumerate(CONVS, start=1):
        x = layers.Conv2D(filters, 3, padding="same", activation="relu", name=name)(x)
        if index <= 3:
            x = layers.MaxPooling2D(2, name=f"pool{index}")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(FC1_UNITS, activation="relu", name="fc1")(x)
    outputs = layers.Dense(num_classes, name="fc2")(x)
    return tf_keras.Model(inputs, outputs, name="admm_cnn")


def _set_weights_by_name(model, arrays):
    for layer in model.layers:
        keys = sorted((k for k in arrays if k.split(":")[1] == layer.name), key=lambda k: int(k.split(":")[2]))
        if keys:
            layer.set_weights([arrays[k] for k in keys])


def run(data, target_sparsity, epochs, batch_size, learning_rate, latency_repeats, layers=SPARSIFIED):
    """Prunes the sparsified layers to ``target_sparsity`` with a constant schedule; returns the results."""
    import tensorflow_model_optimization as tfmot  # noqa: PLC0415 (the tfmot extra; this process only)
    import tf_keras  # noqa: PLC0415

    sparsity = tfmot.sparsity.keras
    x_train, y_train, x_test, y_test = (data[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    num_classes = int(max(y_train.max(), y_test.max())) + 1
    dense = build_admm_cnn(tf_keras, x_train.shape[1:], num_classes)
    _set_weights_by_name(dense, {k: data[k] for k in data.files if k.startswith("w:")})
    steps_per_epoch = max(len(x_train) // batch_size, 1)
    # ConstantSparsity prunes at begin_step and every `frequency` steps after; at least once per epoch.
    schedule = sparsity.ConstantSparsity(target_sparsity, begin_step=0, frequency=min(100, steps_per_epoch))

    def wrap(layer):
        return sparsity.prune_low_magnitude(layer, pruning_schedule=schedule) if layer.name in layers else layer

    pruned = tf_keras.models.clone_model(dense, clone_function=wrap)
    pruned.compile(
        tf_keras.optimizers.SGD(learning_rate, momentum=0.9),
        tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    start = time.perf_counter()
    pruned.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, verbose=0,
               callbacks=[sparsity.UpdatePruningStep()])
    train_s = time.perf_counter() - start
    model = sparsity.strip_pruning(pruned)
    logits = model.predict(x_test, batch_size=256, verbose=0)
    nonzero, total = param_counts(model.get_weights())
    return {
        "method": "tfmot",
        "target_sparsity": float(target_sparsity),
        "accuracy": 100.0 * float(np.mean(np.argmax(logits, axis=-1) == y_test)),
        **filter_stats({name: model.get_layer(name).get_weights()[0] for name in layers}),
        "nonzero_params": nonzero,
        "params": total,
        "latency_ms": median_latency_ms(model.predict_on_batch, x_train.shape[1:], repeats=latency_repeats),
        "train_s": train_s,
        "epochs": epochs,
    }


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tfmot_baseline", description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help=".npz with x_train, y_train, x_test, y_test, w:<layer>:<i>")
    parser.add_argument("--target_sparsity", type=float, required=True, help="fraction of zero weights, [0, 1)")
    parser.add_argument("--epochs", type=int, default=2, help="training epochs under pruning")
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--learning_rate", type=float, default=0.005)
    parser.add_argument("--latency_repeats", type=int, default=30)
    args = parser.parse_args(argv)
    if not 0 <= args.target_sparsity < 1:
        parser.error(f"--target_sparsity must be in [0, 1), got {args.target_sparsity}")
    for key in ("epochs", "batch_size", "latency_repeats"):
        if getattr(args, key) < 1:
            parser.error(f"--{key} must be a positive integer, got {getattr(args, key)}")
    return args


def main(argv=None):
    args = parse_args(argv)
    with np.load(args.data) as data:
        result = run(data, args.target_sparsity, args.epochs, args.batch_size, args.learning_rate,
                     args.latency_repeats)
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])

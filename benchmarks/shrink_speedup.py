"""Measured CPU speedup of shrunk models against the multiply-add reduction.

Target: measured speedup >= 0.8 x the multiply-add reduction at batch 64 (Torch-Pruning reports 2.19x
latency for 3.85x fewer MACs, 0.57). A shrunk model is a dense model with fewer channels and smaller
kernels, so the question is whether the runtime turns the saved arithmetic into time.

Run::

  KERAS_BACKEND=tensorflow python -m benchmarks.shrink_speedup              # CPU, ~3 min on 2 cores
  KERAS_BACKEND=tensorflow python -m benchmarks.shrink_speedup --runtime tflite
  KERAS_BACKEND=tensorflow python -m benchmarks.shrink_speedup --quick      # smoke run, no meaning

Method: for each model, random structured zeros of each kind (``sparse_keras.shrinking.synthetic``) stand in
for a trained sparse model (the speed depends on what is gone, not on how it was learned): whole output
kernels (what the kernel group lasso of the structured-sparsity paper and network-slimming-style methods remove), and output
kernels plus nested half-ring kernel sizes (the structured-sparsity paper's Omega_2). ``shrink`` (``mixed_sizes="auto"``) builds the
smaller model; both are warmed up and timed in interleaved blocks of ``--steps`` compiled ``predict_on_batch``
calls, swapping which goes first each round; the speedup is the median of the per-round ratios.
Multiply-adds are those of every conv / dense kernel (``sparse_keras.analysis``).

Rows per sparsification method (``--methods``; the library's own layers, shrunk by
``sparse_keras.shrinking.library_layers``), each a small network of that method with the zeros the method
leaves, placed at random (half of the output channels unless said otherwise):

* ``lrsd``: ``plain_cnn(lrsd=True)`` (rank K/4, BN after U): output channels zero in U and S, every S
  energy-pruned to 90 % of its energy (``sparse_keras.sparsity.energy``, Guo et al. 2019 eq. 6-7); shrink merges
  ``U V + S`` into one conv.
* ``lrsd_low_rank``: the same with S entirely zero (the l1 drove it away); shrink keeps ``V`` then ``U``.
* ``csc``: an SDNet-style net (a CSC stem, a strided CSC layer, a conv): zero atoms, the next CSC layer's
  slices reading them, and zero conv kernels.
* ``lst``: ``lstnet_resnet20``: zero T_r output kernels in every LST-II block (shrink drops them).

The rows above are thin networks (8-64 channels) whose time on a CPU is mostly per-layer overhead; the
next ones put each method into the network its own paper uses, where the convolutions dominate the time:

* ``lrsd_vgg``: Guo et al.'s (2019) CIFAR VGG (``vgg7_slim(lrsd=True)``, rank 1), zeros as ``lrsd``.
* ``csc_sdnet``: Dai et al.'s (2022) ``sdnet18_all`` (every 3x3 conv of ResNet-18 a CSC layer), zeros as ``csc``.
* ``lst1``: the LST-I ResNet-20 (``block="lst1"``): zero T_c output kernels, which takes out the core
  channel, its ``a * a`` T_s maps, their BN and T_r's inputs (``core_width``).

Their multiply-adds count every factor, FISTA iteration and transform (:func:`multiply_adds`).
"""

import argparse
import shlex
import statistics
import sys
import time

import keras
import numpy as np

from sparse_keras import analysis, benchmark, models
from sparse_keras.layers import CSCConv2D, LRSDConv2D, LRSDDense, LSTBlockI, LSTBlockII
from sparse_keras.models import lstnet
from sparse_keras.shrinking import shrink, synthetic
from sparse_keras.sparsity import energy

TARGET = 0.8
MODELS = ("resnet20", "plain_cnn", "admm_cnn", "nin")
# name -> zero_structures arguments
SPARSITY = {
    "channels 50%": dict(channel_fraction=0.5, shrink_fraction=0.0),
    "channels 50% + sizes": dict(channel_fraction=0.5, shrink_fraction=0.7),
    "channels 75%": dict(channel_fraction=0.75, shrink_fraction=0.0),
}
METHODS = ("lrsd", "lrsd_low_rank", "lrsd_vgg", "csc", "csc_sdnet", "lst", "lst1")
QUICK = {"batch_size": 4, "steps": 1, "rounds": 2, "input_size": 16, "models": "plain_cnn", "methods": ""}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.shrink_speedup", description=__doc__.split("\n")[0])
    full = {"models": ",".join(MODELS), "methods": ",".join(METHODS), "batch_size": 64, "steps": 3, "rounds": 7,
            "input_size": 32}
    # Defaults are resolved after parsing, so that --quick replaces only what was not given explicitly.
    parser.add_argument("--models", help=f"comma-separated sparse_keras.models names (default {full['models']})")
    parser.add_argument("--methods", help=f"comma-separated rows of {METHODS} (default all)")
    parser.add_argument("--batch_size", type=int, help="default 64")
    parser.add_argument("--steps", type=int, help="predict calls per timed block (default 3)")
    parser.add_argument("--rounds", type=int, help="timed blocks per model (default 7)")
    parser.add_argument("--input_size", type=int, help="default 32")
    parser.add_argument("--runtime", choices=("keras", "tflite"), default="keras")
    parser.add_argument("--quick", action="store_true", help=f"smoke run: {QUICK} unless given explicitly")
    args = parser.parse_args(argv)
    for key, value in full.items():
        if getattr(args, key) is None:
            setattr(args, key, QUICK[key] if args.quick else value)
    return args


def _runner(model, shape, runtime):
    """A function running one batch of ``shape`` through ``model`` and waiting for the result."""
    x = np.random.default_rng(0).random(shape, dtype="float32")
    if runtime == "keras":
        return lambda: model.predict_on_batch(x)
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_content=benchmark.tflite_bytes(model), num_threads=None)
    index = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(index, shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(index, x)
    return interpreter.invoke


def _block(run, steps):
    start = time.perf_counter()
    for _ in range(steps):
        run()
    return (time.perf_counter() - start) / steps


def measure(model_name, sparsity, args):
    """One row: multiply-adds, params and interleaved latencies of the dense and the shrunk model."""
    keras.utils.set_random_seed(0)
    shape = (args.input_size, args.input_size, 3)
    dense = models.get(model_name, num_classes=10, input_shape=shape)
    synthetic.zero_structures(dense, seed=1, **SPARSITY[sparsity])
    shrunk = shrink(dense, mixed_sizes="auto")
    macs = (analysis.report(dense, tau=0.0).base_macs, analysis.report(shrunk, tau=0.0).base_macs)
    return {"model": model_name, "sparsity": sparsity, **_timed(dense, shrunk, macs, args)}


def measure_method(method, args):
    """One row for a network sparsified as ``method`` does (see the module docstring)."""
    keras.utils.set_random_seed(0)
    shape = (args.input_size, args.input_size, 3)
    dense, model_name, sparsity = _sparsified(method, shape, np.random.default_rng(1))
    shrunk = shrink(dense, mixed_sizes="auto")
    macs = (multiply_adds(dense), multiply_adds(shrunk))
    return {"model": model_name, "sparsity": sparsity, **_timed(dense, shrunk, macs, args)}


def _output_difference(dense, shrunk, shape):
    """Largest output difference of the two models on two random images, relative to the largest output."""
    x = np.random.default_rng(2).normal(size=(2, *shape)).astype("float32")
    expected = np.asarray(dense.predict_on_batch(x))
    return float(np.abs(np.asarray(shrunk.predict_on_batch(x)) - expected).max() / max(np.abs(expected).max(), 1e-30))


def _timed(dense, shrunk, macs, args):
    shape = tuple(dense.inputs[0].shape[1:])
    difference = _output_difference(dense, shrunk, shape)
    runs = [_runner(m, (args.batch_size, *shape), args.runtime) for m in (dense, shrunk)]
    for run in runs:
        _block(run, 2)  # compile / allocate
    ratios, times = [], ([], [])
    for round_index in range(args.rounds):
        order = (0, 1) if round_index % 2 == 0 else (1, 0)
        block = {}
        for i in order:
            block[i] = _block(runs[i], args.steps)
            times[i].append(block[i])
        ratios.append(block[0] / block[1])
    speedup = statistics.median(ratios)
    return {
        "params": (dense.count_params(), shrunk.count_params()),
        "macs": macs,
        "ms": (1e3 * statistics.median(times[0]), 1e3 * statistics.median(times[1])),
        "speedup": speedup,
        "mac_reduction": macs[0] / macs[1],
        "efficiency": speedup / (macs[0] / macs[1]),
        "grouped": sum(1 for form, _ in shrunk.shrink_choices.values() if form == "grouped"),
        "output_difference": difference,
    }


def _sparsified(method, shape, rng):
    """``(model, model label, zeros label)``: a fresh network of ``method`` with its zeros in place."""
    if method in ("lrsd", "lrsd_low_rank"):
        model = models.get("plain_cnn", num_classes=10, input_shape=shape, lrsd=True, rank="K/4")
        _zero_lrsd_model(model, rng, zero_sparse=method == "lrsd_low_rank")
        label = "S energy 0.9" if method == "lrsd" else "S zero (U V only)"
        return model, "plain_cnn (LRSD)", f"lrsd: channels 50% + {label}"
    if method == "lrsd_vgg":
        model = models.get("vgg7_slim", num_classes=10, input_shape=shape, lrsd=True, rank="1")
        _zero_lrsd_model(model, rng, zero_sparse=False)
        return model, "vgg7_slim (LRSD, rank 1)", "lrsd: channels 50% + S energy 0.9"
    if method in ("csc", "csc_sdnet"):
        model = csc_cnn(shape) if method == "csc" else models.get("sdnet18_all", num_classes=10, input_shape=shape)
        synthetic.zero_structures(model, channel_fraction=0.5, seed=1)
        dead = None
        for layer in model.layers:
            if isinstance(layer, CSCConv2D):
                dead = _zero_atoms(layer, rng.random(layer.filters) < 0.5, dead)
        return model, model.name, "csc: atoms / channels 50%"
    if method in ("lst", "lst1"):
        block = "lst2" if method == "lst" else "lst1"
        model = models.get("lstnet_resnet20", num_classes=10, input_shape=shape, block=block)
        for layer in model.layers:
            # LST-II loses T_r outputs (resize_width), LST-I T_c outputs with all they feed (core_width).
            if isinstance(layer, (LSTBlockII, LSTBlockI)):
                conv = layer.resize_conv if block == "lst2" else layer.channel_conv
                kernel = keras.ops.convert_to_numpy(conv.kernel).copy()
                kernel[..., rng.random(kernel.shape[-1]) < 0.5] = 0
                conv.kernel.assign(kernel)
        if block == "lst2":
            return model, "lstnet_resnet20", "lst: T_r outputs 50%"
        return model, "lstnet_resnet20 (LST-I)", "lst: T_c outputs 50%"
    raise ValueError(f"--methods holds {method!r}; allowed: {METHODS}")


def _zero_lrsd_model(model, rng, zero_sparse):
    for layer in model.layers[:-1]:
        if isinstance(layer, (LRSDConv2D, LRSDDense)):
            _zero_lrsd_outputs(layer, rng.random(layer.outputs) < 0.5, zero_sparse)


def _zero_lrsd_outputs(layer, dead, zero_sparse):
    u = keras.ops.convert_to_numpy(layer.u_kernel).copy() if not layer.sparse_only else None
    s = keras.ops.convert_to_numpy(layer.s_kernel).copy()
    s = s * energy.energy_ratio_mask(s, 0.9) if not zero_sparse else np.zeros_like(s)
    s[..., dead] = 0
    layer.s_kernel.assign(s)
    if u is not None:
        u[..., dead] = 0
        layer.u_kernel.assign(u)
    if layer.bias is not None:
        layer.bias.assign(np.where(dead, 0, keras.ops.convert_to_numpy(layer.bias)))


def _zero_atoms(layer, dead, dead_inputs):
    """Zeroes atoms ``dead`` and the slices reading ``dead_inputs`` (a zero input channel that an atom reads
    stays: FISTA's residual feeds it back); returns ``dead``."""
    kernel = keras.ops.convert_to_numpy(layer.kernel).copy()
    kernel[..., dead] = 0
    if dead_inputs is not None and len(dead_inputs) == kernel.shape[2]:
        kernel[:, :, dead_inputs] = 0
    layer.kernel.assign(kernel)
    return dead


def csc_cnn(shape, num_classes=10):
    """SDNet in small: a CSC stem + BN, a strided CSC layer + BN + ReLU, a conv, pooling and a classifier."""
    inputs = keras.Input(shape)
    x = keras.layers.BatchNormalization(name="stem_bn")(CSCConv2D(32, 3, name="stem_csc")(inputs))
    x = keras.layers.BatchNormalization(name="csc2_bn")(CSCConv2D(64, 3, strides=2, name="csc2")(x))
    x = keras.layers.ReLU(name="csc2_relu")(x)
    x = keras.layers.Conv2D(64, 3, padding="same", activation="relu", name="conv3")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes, name="classifier")(x), name="csc_cnn")


def multiply_adds(model):
    """Multiply-adds of one example: :func:`sparse_keras.models.lstnet.multiply_adds` (convs, dense layers,
    LST blocks) plus LRSD layers (``V``, ``U`` and the dense ``S``) and CSC layers (``2 n_iter - 1``
    convolutions of the dictionary: one ``A*`` for the first iterate, ``A`` and ``A*`` for each further one)."""
    total = lstnet.multiply_adds(model)
    for layer in model.layers:
        if isinstance(layer, (LRSDConv2D, LRSDDense, CSCConv2D)):
            inputs, out = layer.input.shape[-1], layer.output.shape
            positions = int(np.prod(out[1:-1])) if len(out) > 2 else 1
            if isinstance(layer, CSCConv2D):
                total += (2 * layer.n_iter - 1) * positions * layer.kernel_size**2 * inputs * layer.filters
            else:
                area, rank = int(np.prod(getattr(layer, "kernel_size", ()))), layer.rank or 0
                total += positions * (area * inputs * layer.outputs + rank * (area * inputs + layer.outputs))
    return int(total)


def format_table(rows, args, command):
    lines = [
        f"command: {command}",
        f"backend: {keras.backend.backend()}, runtime: {args.runtime}, batch {args.batch_size}, "
        f"input {args.input_size}x{args.input_size}x3, {args.rounds} rounds x {args.steps} calls, "
        f"device: {benchmark_device()}",
        "",
        "| model | zeroed | params dense -> shrunk | MACs dense -> shrunk | MAC reduction | ms/batch dense -> shrunk "
        "| measured speedup | speedup / MAC reduction | grouped convs | max rel. output diff | verdict (>= 0.8) |",
        "|---|---|---|---|---:|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['sparsity']} | {r['params'][0]:,} -> {r['params'][1]:,} | "
            f"{r['macs'][0] / 1e6:.1f}M -> {r['macs'][1] / 1e6:.1f}M | {r['mac_reduction']:.2f}x | "
            f"{r['ms'][0]:.1f} -> {r['ms'][1]:.1f} | {r['speedup']:.2f}x | **{r['efficiency']:.2f}** | {r['grouped']} | {r['output_difference']:.1e} | "
            f"{'PASS' if r['efficiency'] >= TARGET else 'FAIL'} |"
        )
    return "\n".join(lines)


def benchmark_device():
    import os

    return f"{os.cpu_count()}-core CPU" if "gpu" not in str(keras.distribution.list_devices()[0]).lower() else "GPU"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    rows = [measure(name, sparsity, args) for name in _names(args.models) for sparsity in SPARSITY]
    rows += [measure_method(method, args) for method in _names(args.methods)]
    command = f"KERAS_BACKEND={keras.backend.backend()} python -m benchmarks.shrink_speedup {shlex.join(argv)}"
    print(format_table(rows, args, command.rstrip()))
    return rows


def _names(text):
    return [name for name in text.split(",") if name]


if __name__ == "__main__":
    main()

"""Measured CPU speedup of shrunk models against the multiply-add reduction (issue 8).

Target: measured speedup >= 0.8 x the multiply-add reduction at batch 64 (Torch-Pruning reports 2.19x
latency for 3.85x fewer MACs, 0.57). A shrunk model is a dense model with fewer channels and smaller
kernels, so the question is whether the runtime turns the saved arithmetic into time.

Run::

  KERAS_BACKEND=tensorflow python -m benchmarks.shrink_speedup              # CPU, ~3 min on 2 cores
  KERAS_BACKEND=tensorflow python -m benchmarks.shrink_speedup --runtime tflite
  KERAS_BACKEND=tensorflow python -m benchmarks.shrink_speedup --quick      # smoke run, no meaning

Method: for each model, random structured zeros of each kind (``sparse_keras.shrinking.synthetic``) stand in
for a trained sparse model (the speed depends on what is gone, not on how it was learned): whole output
kernels (what the kernel group lasso of seed 004 and network-slimming-style methods remove), and output
kernels plus nested half-ring kernel sizes (seed 004's Omega_2). ``shrink`` (``mixed_sizes="auto"``) builds the
smaller model; both are warmed up and timed in interleaved blocks of ``--steps`` compiled ``predict_on_batch``
calls, swapping which goes first each round; the speedup is the median of the per-round ratios.
Multiply-adds are those of every conv / dense kernel (``sparse_keras.analysis``).
"""

import argparse
import shlex
import statistics
import sys
import time

import keras
import numpy as np

from sparse_keras import analysis, benchmark, models
from sparse_keras.shrinking import shrink, synthetic

TARGET = 0.8
MODELS = ("resnet20", "plain_cnn", "admm_cnn", "nin")
# name -> zero_structures arguments
SPARSITY = {
    "channels 50%": dict(channel_fraction=0.5, shrink_fraction=0.0),
    "channels 50% + sizes": dict(channel_fraction=0.5, shrink_fraction=0.7),
    "channels 75%": dict(channel_fraction=0.75, shrink_fraction=0.0),
}
QUICK = {"batch_size": 4, "steps": 1, "rounds": 2, "input_size": 16, "models": "plain_cnn"}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.shrink_speedup", description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated sparse_keras.models names")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3, help="predict calls per timed block")
    parser.add_argument("--rounds", type=int, default=7, help="timed blocks per model")
    parser.add_argument("--input_size", type=int, default=32)
    parser.add_argument("--runtime", choices=("keras", "tflite"), default="keras")
    parser.add_argument("--quick", action="store_true", help=f"smoke run, overrides with {QUICK}")
    args = parser.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
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
    macs = (analysis.report(dense, tau=0.0).base_macs, analysis.report(shrunk, tau=0.0).base_macs)
    speedup = statistics.median(ratios)
    return {
        "model": model_name,
        "sparsity": sparsity,
        "params": (dense.count_params(), shrunk.count_params()),
        "macs": macs,
        "ms": (1e3 * statistics.median(times[0]), 1e3 * statistics.median(times[1])),
        "speedup": speedup,
        "mac_reduction": macs[0] / macs[1],
        "efficiency": speedup / (macs[0] / macs[1]),
        "grouped": sum(1 for form, _ in shrunk.shrink_choices.values() if form == "grouped"),
    }


def format_table(rows, args, command):
    lines = [
        f"command: {command}",
        f"backend: {keras.backend.backend()}, runtime: {args.runtime}, batch {args.batch_size}, "
        f"input {args.input_size}x{args.input_size}x3, {args.rounds} rounds x {args.steps} calls, "
        f"device: {benchmark_device()}",
        "",
        "| model | zeroed | params dense -> shrunk | MACs dense -> shrunk | MAC reduction | ms/batch dense -> shrunk "
        "| measured speedup | speedup / MAC reduction | grouped convs | verdict (>= 0.8) |",
        "|---|---|---|---|---:|---|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['sparsity']} | {r['params'][0]:,} -> {r['params'][1]:,} | "
            f"{r['macs'][0] / 1e6:.1f}M -> {r['macs'][1] / 1e6:.1f}M | {r['mac_reduction']:.2f}x | "
            f"{r['ms'][0]:.1f} -> {r['ms'][1]:.1f} | {r['speedup']:.2f}x | **{r['efficiency']:.2f}** | {r['grouped']} | "
            f"{'PASS' if r['efficiency'] >= TARGET else 'FAIL'} |"
        )
    return "\n".join(lines)


def benchmark_device():
    import os

    return f"{os.cpu_count()}-core CPU" if "gpu" not in str(keras.distribution.list_devices()[0]).lower() else "GPU"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    rows = [measure(name, sparsity, args) for name in args.models.split(",") for sparsity in SPARSITY]
    command = f"KERAS_BACKEND={keras.backend.backend()} python -m benchmarks.shrink_speedup {shlex.join(argv)}"
    print(format_table(rows, args, command.rstrip()))
    return rows


if __name__ == "__main__":
    main()

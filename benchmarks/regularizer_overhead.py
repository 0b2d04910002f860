"""Training-step cost of the nested half-ring regularizer on ResNet-20.

The ratio ``ms/step with NestedHalfRing(1e-4) / ms/step without`` must stay <= 1.05 on CPU and <= 1.03 on
GPU: the penalty is a few small reductions per kernel and should vanish next to the convolutions.

Run (each run builds both models, so the two sides share the process, the data and the weights)::

  KERAS_BACKEND=tensorflow python -m benchmarks.regularizer_overhead            # CPU, ~2.5-4 min on 2 cores
  KERAS_BACKEND=jax python -m benchmarks.regularizer_overhead                   # CPU, ~5 min on 2 cores
  KERAS_BACKEND=jax python -m benchmarks.regularizer_overhead --steps 50 --rounds 30  # GPU machine
  KERAS_BACKEND=jax python -m benchmarks.regularizer_overhead --quick            # smoke run, no meaning

Method: build ``resnet20`` twice with identical weights, attach ``NestedHalfRing(1e-4)`` to one with
``sparse_keras.regularize`` (every conv: the 19 3x3 convs and the 2 1x1 shortcut convs, which form a single
group each; the classifier is left out as in the papers), compile both (SGD with momentum, the backend's
default ``jit_compile``), warm both up, then time interleaved blocks of ``--steps`` ``train_on_batch``
calls, swapping which model goes first every round so that drift (thermal, other processes) hits both
sides alike. Short blocks and many rounds keep the two halves of each ratio seconds apart, which matters
on a shared CPU. The reported ratio is the median of the per-round ratios; the spread is their
interquartile range (every round's ratio is printed too).

No TensorFlow import here: the GPU machine has JAX only.
"""

import argparse
import dataclasses
import os
import shlex
import statistics
import sys
import time

import keras
import numpy as np

import sparse_keras
from sparse_keras import models
from sparse_keras.regularizers import NestedHalfRing

TARGETS = {"cpu": 1.05, "gpu": 1.03}
QUICK = {"batch_size": 8, "steps": 2, "rounds": 2, "input_size": 16, "warmup": 1}


@dataclasses.dataclass(frozen=True)
class Result:
    backend: str
    device: str
    device_type: str  # "cpu" or "gpu": picks the target
    model: str
    batch_size: int
    input_size: int
    steps: int
    rounds: int
    jit_compile: bool
    regularized_kernels: int
    plain_ms: tuple  # ms/step of each timed block, in round order
    regularized_ms: tuple

    @property
    def ratios(self):
        return tuple(r / p for r, p in zip(self.regularized_ms, self.plain_ms))

    @property
    def ratio(self):
        return statistics.median(self.ratios)

    @property
    def target(self):
        return TARGETS[self.device_type]

    @property
    def passed(self):
        return self.ratio <= self.target


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.regularizer_overhead", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--model", default="resnet20", help="a sparse_keras.models name")
    parser.add_argument("--batch_size", type=_positive_int, default=128)
    parser.add_argument("--steps", type=_positive_int, default=5, help="train steps per timed block")
    parser.add_argument("--rounds", type=_positive_int, default=24, help="timed blocks per model")
    parser.add_argument("--warmup", type=_positive_int, default=3, help="untimed steps per model (compiles)")
    parser.add_argument("--input_size", type=_positive_int, default=32, help="image side; 32 is CIFAR")
    parser.add_argument("--strength", type=float, default=1e-4, help="NestedHalfRing strength")
    parser.add_argument("--jit_compile", choices=("auto", "true", "false"), default="auto")
    parser.add_argument("--quick", action="store_true", help=f"smoke run, overrides the sizes with {QUICK}")
    args = parser.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    return args


def run(args):
    """Builds, warms up and times both models; returns a :class:`Result`."""
    keras.utils.set_random_seed(0)
    input_shape = (args.input_size, args.input_size, 3)
    plain = models.get(args.model, num_classes=10, input_shape=input_shape)
    regularized = models.get(args.model, num_classes=10, input_shape=input_shape)
    regularized.set_weights(plain.get_weights())
    sparse_keras.regularize(regularized, NestedHalfRing(args.strength))
    if plain.losses or not regularized.losses:
        raise RuntimeError("The baseline must carry no penalty and the other model one; check regularize()")
    jit_compile = {"auto": "auto", "true": True, "false": False}[args.jit_compile]
    for model in (plain, regularized):
        model.compile(
            optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=jit_compile,
        )

    rng = np.random.default_rng(0)
    # Converted once so that neither side pays a host-to-device copy inside its timed block.
    x = keras.ops.convert_to_tensor(rng.normal(size=(args.batch_size, *input_shape)).astype("float32"))
    y = keras.ops.convert_to_tensor(rng.integers(0, 10, size=(args.batch_size,)).astype("int32"))
    for model in (plain, regularized):
        _time_block(model, x, y, args.warmup)

    times = {id(plain): [], id(regularized): []}
    for round_index in range(args.rounds):
        order = (plain, regularized) if round_index % 2 == 0 else (regularized, plain)
        for model in order:
            times[id(model)].append(1000.0 * _time_block(model, x, y, args.steps))

    device, device_type = describe_device()
    return Result(
        backend=keras.backend.backend(),
        device=device,
        device_type=device_type,
        model=args.model,
        batch_size=args.batch_size,
        input_size=args.input_size,
        steps=args.steps,
        rounds=args.rounds,
        jit_compile=bool(regularized.jit_compile),
        regularized_kernels=len(regularized.losses),
        plain_ms=tuple(times[id(plain)]),
        regularized_ms=tuple(times[id(regularized)]),
    )


def _time_block(model, x, y, steps):
    """Seconds per step over ``steps`` calls; ``train_on_batch`` returns numpy logs, so each step has
    finished (also on an asynchronous GPU) before the clock is read."""
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return (time.perf_counter() - start) / steps


def describe_device():
    """A human-readable name of the device Keras computes on, and ``"cpu"`` or ``"gpu"``."""
    first = keras.distribution.list_devices()[0].lower()
    device_type = "gpu" if first.startswith(("gpu", "cuda")) else "cpu"
    if device_type == "cpu":
        return f"{os.cpu_count()}-core CPU", device_type
    if keras.backend.backend() == "jax":
        import jax  # only on this backend: the name of the accelerator

        return f"{jax.devices()[0].device_kind} ({first})", device_type
    return first, device_type


def format_table(result, command):
    low, high = _quartiles(result.ratios)
    rows = [
        ("command", command),
        ("backend", f"{result.backend} (jit_compile={result.jit_compile})"),
        ("device", result.device),
        ("model", f"{result.model}, input {result.input_size}x{result.input_size}x3"),
        ("regularized kernels", f"{result.regularized_kernels} (NestedHalfRing; classifier excluded)"),
        ("batch", result.batch_size),
        ("steps", f"{result.steps} per block x {result.rounds} rounds, interleaved"),
        ("ms/step without", f"{statistics.median(result.plain_ms):.1f} (median of blocks)"),
        ("ms/step with", f"{statistics.median(result.regularized_ms):.1f} (median of blocks)"),
        ("ratio", f"{result.ratio:.3f} (median of rounds; IQR {low:.3f} .. {high:.3f})"),
        ("ratio per round", " ".join(f"{r:.2f}" for r in result.ratios)),
        ("target", f"<= {result.target:.2f} on {result.device_type.upper()}"),
        ("verdict", "PASS" if result.passed else "FAIL"),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def main(argv=None):
    """Parses flags, runs the benchmark, prints the table and returns the :class:`Result`."""
    argv = sys.argv[1:] if argv is None else list(argv)
    result = run(parse_args(argv))
    command = f"KERAS_BACKEND={result.backend} python -m benchmarks.regularizer_overhead {shlex.join(argv)}"
    print(format_table(result, command.rstrip()))
    return result


def _quartiles(values):
    if len(values) < 2:
        return values[0], values[0]
    low, _, high = statistics.quantiles(values, n=4)
    return low, high


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


if __name__ == "__main__":
    main()

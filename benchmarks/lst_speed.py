"""Training and inference throughput of LST-Net ResNet-20/56 against ResNet-20/56.

Targets (GPU only, batch 128, fp32, 32x32x3): the official PyTorch code trains ``lstnet_resnet20`` at about
4,800 images/s and ``lstnet_resnet56`` at about 1,900 images/s on an H100; ours must reach at least twice
that, >= 9,600 and >= 3,800 images/s, in training and likewise in inference. On CPU there is no target: the
script reports images/s and the LST / ResNet ratio of each pair.

Run (the two models of a pair share the process, the data and the measurement rounds)::

  KERAS_BACKEND=tensorflow python -m benchmarks.lst_speed --rounds 4        # CPU, ~3 min on 2 shared cores
  KERAS_BACKEND=jax python -m benchmarks.lst_speed --steps 50 --rounds 10   # the GPU machine
  KERAS_BACKEND=jax python -m benchmarks.lst_speed --quick                  # smoke run, no meaning

Method: for each depth build the LST-Net and the ResNet, compile both (SGD momentum 0.9, the backend's
default ``jit_compile``), warm up ``train_on_batch`` and ``predict_on_batch``, then time interleaved blocks
of ``--steps`` calls, alternating which model goes first each round so drift hits both sides alike.
Throughput is ``batch / median seconds per step``. Every timed call returns numpy, so each step has finished
on an asynchronous device before the clock is read.

No TensorFlow import here: the GPU machine has JAX only.
"""

import argparse
import dataclasses
import shlex
import statistics
import sys
import time

import keras
import numpy as np

from benchmarks.regularizer_overhead import _positive_int, describe_device
from sparse_keras import models

# images/s the official PyTorch code reaches on an H100; our GPU target is twice that.
OFFICIAL_H100 = {"lstnet_resnet20": 4_800, "lstnet_resnet56": 1_900}
TARGET_FACTOR = 2.0
QUICK = {"batch_size": 8, "steps": 1, "rounds": 1, "warmup": 1, "depths": (20,)}


@dataclasses.dataclass(frozen=True)
class Timing:
    model: str
    params: int
    train_s: tuple  # seconds per step of each timed block
    infer_s: tuple

    def images_per_s(self, batch_size, phase):
        return batch_size / statistics.median(self.train_s if phase == "train" else self.infer_s)


@dataclasses.dataclass(frozen=True)
class Result:
    backend: str
    device: str
    device_type: str
    batch_size: int
    steps: int
    rounds: int
    jit_compile: bool
    spatial_implementation: str
    timings: tuple  # Timing per model, pairs (LST-Net, ResNet) in depth order

    def rows(self):
        """(model, params, train images/s, inference images/s, target images/s or None)."""
        for t in self.timings:
            target = OFFICIAL_H100.get(t.model) if self.device_type == "gpu" else None
            yield (t.model, t.params, t.images_per_s(self.batch_size, "train"),
                   t.images_per_s(self.batch_size, "infer"), None if target is None else TARGET_FACTOR * target)

    @property
    def passed(self):
        """True/False against the GPU targets; None on CPU, where there is none."""
        checks = [min(train, infer) >= target for _, _, train, infer, target in self.rows() if target]
        return all(checks) if checks else None


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.lst_speed", description=__doc__.split("\n")[0])
    parser.add_argument("--depths", type=_positive_int, nargs="+", default=(20, 56), help="CIFAR ResNet depths")
    parser.add_argument("--batch_size", type=_positive_int, default=128)
    parser.add_argument("--steps", type=_positive_int, default=3, help="calls per timed block")
    parser.add_argument("--rounds", type=_positive_int, default=4, help="timed blocks per model and phase")
    parser.add_argument("--warmup", type=_positive_int, default=2, help="untimed calls per model (compiles)")
    parser.add_argument("--jit_compile", choices=("auto", "true", "false"), default="auto")
    parser.add_argument("--spatial_implementation", choices=("auto", "depthwise", "reshape"), default="auto",
                        help="how LST-Net computes T_s (same numbers; see SharedSpatialTransform)")
    parser.add_argument("--quick", action="store_true", help=f"smoke run, overrides the sizes with {QUICK}")
    args = parser.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    return args


def run(args):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = keras.ops.convert_to_tensor(rng.normal(size=(args.batch_size, 32, 32, 3)).astype("float32"))
    y = keras.ops.convert_to_tensor(rng.integers(0, 10, size=(args.batch_size,)).astype("int32"))
    jit_compile = {"auto": "auto", "true": True, "false": False}[args.jit_compile]
    timings, compiled = [], None
    for depth in args.depths:
        pair = [models.get(f"lstnet_resnet{depth}", spatial_implementation=args.spatial_implementation),
                models.get(f"resnet{depth}")]
        for model in pair:
            model.compile(
                optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                jit_compile=jit_compile,
            )
            _time(model.train_on_batch, x, y, args.warmup)
            _time(model.predict_on_batch, x, None, args.warmup)
        compiled = bool(pair[0].jit_compile)
        train, infer = {m.name: [] for m in pair}, {m.name: [] for m in pair}
        for round_index in range(args.rounds):
            for model in pair if round_index % 2 == 0 else pair[::-1]:
                train[model.name].append(_time(model.train_on_batch, x, y, args.steps))
                infer[model.name].append(_time(model.predict_on_batch, x, None, args.steps))
        timings += [Timing(m.name, _trainable(m), tuple(train[m.name]), tuple(infer[m.name])) for m in pair]
    device, device_type = describe_device()
    return Result(keras.backend.backend(), device, device_type, args.batch_size, args.steps, args.rounds,
                  compiled, args.spatial_implementation, tuple(timings))


def _trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def _time(call, x, y, steps):
    start = time.perf_counter()
    for _ in range(steps):
        call(x, y) if y is not None else call(x)
    return (time.perf_counter() - start) / steps


def format_table(result, command):
    lines = [
        f"command: {command}",
        f"backend: {result.backend} (jit_compile={result.jit_compile}); device: {result.device}; "
        f"T_s implementation: {result.spatial_implementation}",
        f"batch {result.batch_size}, 32x32x3, fp32; {result.steps} calls per block x {result.rounds} rounds, interleaved",
        "",
        "| model | trainable params | train images/s | inference images/s | GPU target (2x official) |",
        "|---|---:|---:|---:|---|",
    ]
    rows = list(result.rows())
    for model, params, train, infer, target in rows:
        verdict = "-" if target is None else f">= {target:,.0f}: {'PASS' if min(train, infer) >= target else 'FAIL'}"
        lines.append(f"| {model} | {params:,} | {train:,.0f} | {infer:,.0f} | {verdict} |")
    lines.append("")
    for (lst_name, _, lst_train, lst_infer, _), (base, _, train, infer, _) in zip(rows[::2], rows[1::2]):
        lines.append(f"{lst_name} / {base}: training {lst_train / train:.2f}x, inference {lst_infer / infer:.2f}x "
                     "the baseline's images/s")
    return "\n".join(lines)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    result = run(parse_args(argv))
    command = f"KERAS_BACKEND={result.backend} python -m benchmarks.lst_speed {shlex.join(argv)}"
    print(format_table(result, command.rstrip()))
    return result


if __name__ == "__main__":
    main()

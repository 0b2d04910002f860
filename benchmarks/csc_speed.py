"""Throughput of SDNet-18 / SDNet-18-All vs ResNet-18, and the cost of one CSC layer vs one conv.

Targets (GPU, batch 128 fp32, 32x32 input, the power iteration refreshed in every training step as the paper
does): SDNet-18 trains at >= 20,000 images/s (2.5x the official PyTorch 8,300) and at >= 0.9x our own
ResNet-18; SDNet-18-All is reported beside the paper's 400 images/s; one CSC layer costs close to its bound
of ``2 n_iter`` convolutions (forward: ``n_iter`` A* and ``n_iter - 1`` A).

Run::

  KERAS_BACKEND=tensorflow python -m benchmarks.csc_speed --batch_size 32 --rounds 3   # CPU, a few minutes
  KERAS_BACKEND=jax python -m benchmarks.csc_speed --batch_size 128 --steps 20 --rounds 5  # GPU machine
  KERAS_BACKEND=jax python -m benchmarks.csc_speed --quick --models none                  # smoke run

Method: every model / layer variant is built once with the same seed, compiled (the backend's default
``jit_compile``) and warmed up; then interleaved rounds time ``--steps`` calls of ``train_on_batch`` and of
``predict_on_batch`` per variant, the order rotating every round. A rate is the median over rounds; a
ratio is the median of per-round ratios (both sides measured seconds apart). The single-layer part times
``Input(32x32x64) -> layer`` models with a mean-squared-error loss: ``Conv2D(64, 3)``, ``CSCConv2D(64, 3)``
and ``CSCConv2D(64, 3, refresh_step_size=False)`` (no power iteration: its cost is the difference).

``--reference`` adds, for every CSC model and the CSC layer, a twin whose synthesis ``A(z)`` is the
transposed convolution the layer used before its phase synthesis (:func:`sparse_keras.layers.csc.transposed_synthesis`,
the same numbers), timed in the same interleaved rounds: the report prints the speed-up of today's
:func:`~sparse_keras.layers.csc.phase_synthesis` over it on JAX (on TensorFlow the layer still uses the
transposed convolution, so both sides are the same computation there: the ratio shows the noise).

No TensorFlow import here: the GPU machine has JAX only.
"""

import argparse
import dataclasses
import shlex
import statistics
import sys
import time
import types

import keras
import numpy as np

from benchmarks.regularizer_overhead import _positive_int
from benchmarks.regularizer_overhead import describe_device
from sparse_keras import models
from sparse_keras.layers import CSCConv2D
from sparse_keras.layers import csc

MODELS = ("resnet18_cifar", "sdnet18", "sdnet18_all")
PAPER_IMAGES_PER_S = {"sdnet18": "8,300 (official PyTorch, H100); paper 1,500 (Table D.1)",
                      "sdnet18_all": "paper 400 (Table D.1)", "resnet18_cifar": "11,200 (PyTorch, H100)"}
QUICK = {"batch_size": 4, "steps": 1, "rounds": 2, "warmup": 1, "layer_size": 8}


@dataclasses.dataclass(frozen=True)
class Timing:
    """Seconds per step of one variant, one entry per round."""

    name: str
    train_s: tuple
    infer_s: tuple


@dataclasses.dataclass(frozen=True)
class Result:
    backend: str
    device: str
    batch_size: int
    steps: int
    rounds: int
    n_iter: int
    models: tuple  # of Timing
    layers: tuple  # of Timing: conv, csc, csc_frozen_step
    references: tuple = ()  # of (name, Timing) pairs: the variant and its transposed-synthesis twin

    def images_per_s(self, timing, phase):
        return self.batch_size / statistics.median(getattr(timing, f"{phase}_s"))

    def ratio(self, numerator, denominator, phase):
        a, b = getattr(numerator, f"{phase}_s"), getattr(denominator, f"{phase}_s")
        return statistics.median(x / y for x, y in zip(a, b))

    def timing(self, name):
        return {t.name: t for t in self.models + self.layers}[name]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.csc_speed", description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated names, or 'none'")
    parser.add_argument("--batch_size", type=_positive_int, default=128)
    parser.add_argument("--steps", type=_positive_int, default=5, help="calls per timed block")
    parser.add_argument("--rounds", type=_positive_int, default=5, help="timed blocks per variant and phase")
    parser.add_argument("--warmup", type=_positive_int, default=2, help="untimed calls per variant (compiles)")
    parser.add_argument("--input_size", type=_positive_int, default=32, help="image side of the models")
    parser.add_argument("--layer_size", type=_positive_int, default=32, help="feature-map side of the layer test")
    parser.add_argument("--n_iter", type=_positive_int, default=2, help="FISTA iterations of every CSC layer")
    parser.add_argument("--reference", action="store_true",
                        help="also time every CSC variant with the former transposed-convolution synthesis")
    parser.add_argument("--quick", action="store_true", help=f"smoke run, overrides the sizes with {QUICK}")
    args = parser.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    names = () if args.models == "none" else tuple(n for n in args.models.split(",") if n)
    unknown = [n for n in names if n not in models.available()]
    if unknown:
        parser.error(f"unknown --models {unknown}; known: {models.available()}")
    args.models = names
    return args


def run(args):
    """Builds and times every variant; returns a :class:`Result`."""
    rng = np.random.default_rng(0)
    csc_kwargs = {"n_iter": args.n_iter}
    variants, references = {}, []
    for name in args.models:
        shape = (args.input_size, args.input_size, 3)
        extra = {} if name.startswith("resnet") else {"n_iter": args.n_iter}
        x, labels = _batch(rng, args.batch_size, shape), rng.integers(0, 10, size=(args.batch_size,)).astype("int32")
        for reference in (False, True) if args.reference and extra else (False,):
            keras.utils.set_random_seed(0)
            model = models.get(name, num_classes=10, input_shape=shape, **extra)
            model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True),
                          loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
            variants[_variant_name(name, reference, references)] = (_with_reference(model, reference), x, labels)
    layer_shape = (args.layer_size, args.layer_size, 64)
    x = _batch(rng, args.batch_size, layer_shape)
    for name, make_layer in (
        ("conv", lambda: keras.layers.Conv2D(64, 3, padding="same", use_bias=False)),
        ("csc", lambda: CSCConv2D(64, 3, **csc_kwargs)),
        ("csc_frozen_step", lambda: CSCConv2D(64, 3, refresh_step_size=False, **csc_kwargs)),
    ):
        for reference in (False, True) if args.reference and name == "csc" else (False,):
            keras.utils.set_random_seed(0)
            inputs = keras.Input(layer_shape)
            model = keras.Model(inputs, make_layer()(inputs), name=name)
            model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
            variants[_variant_name(name, reference, references)] = (_with_reference(model, reference), x,
                                                                    keras.ops.zeros_like(x))

    for model, x, y in variants.values():
        _time_block(model.train_on_batch, x, y, args.warmup)
        _time_block(model.predict_on_batch, x, None, args.warmup)
    times = {name: {"train": [], "infer": []} for name in variants}
    order = list(variants)
    for round_index in range(args.rounds):
        shift = round_index % len(order)
        for name in order[shift:] + order[:shift]:
            model, x, y = variants[name]
            times[name]["train"].append(_time_block(model.train_on_batch, x, y, args.steps))
            times[name]["infer"].append(_time_block(model.predict_on_batch, x, None, args.steps))
    timings = {n: Timing(n, tuple(t["train"]), tuple(t["infer"])) for n, t in times.items()}
    return Result(
        backend=keras.backend.backend(),
        device=describe_device()[0],
        batch_size=args.batch_size,
        steps=args.steps,
        rounds=args.rounds,
        n_iter=args.n_iter,
        models=tuple(timings[n] for n in args.models),
        layers=tuple(timings[n] for n in ("conv", "csc", "csc_frozen_step")),
        references=tuple((timings[n], timings[n + REFERENCE_SUFFIX]) for n in references),
    )


REFERENCE_SUFFIX = "_transposed"


def _variant_name(name, reference, references):
    if reference:
        references.append(name)
        return name + REFERENCE_SUFFIX
    return name


def _with_reference(model, reference):
    """``model``, its CSC layers switched to the transposed-convolution synthesis when ``reference``."""
    if reference:
        for layer in csc.csc_layers(model):
            layer.synthesis = types.MethodType(_transposed_synthesis, layer)
    return model


def _transposed_synthesis(layer, z, kernel=None, output_size=None):
    kernel = layer.kernel if kernel is None else kernel
    output_size = layer.input_size if output_size is None else output_size
    return csc.transposed_synthesis(z, keras.ops.cast(kernel, z.dtype), layer.strides, output_size)


def _batch(rng, batch_size, shape):
    # Converted once so that no variant pays a host-to-device copy inside its timed block.
    return keras.ops.convert_to_tensor(rng.normal(size=(batch_size, *shape)).astype("float32"))


def _time_block(step, x, y, steps):
    """Seconds per call; both calls return numpy, so each has finished before the clock is read."""
    start = time.perf_counter()
    for _ in range(steps):
        step(x, y) if y is not None else step(x)
    return (time.perf_counter() - start) / steps


def format_report(result, command):
    lines = [
        f"command  {command}",
        f"backend  {result.backend}   device  {result.device}   batch {result.batch_size}   "
        f"{result.steps} calls x {result.rounds} rounds   FISTA iterations {result.n_iter}",
        "",
        f"{'model':<16} {'train img/s':>12} {'infer img/s':>12} {'train vs resnet':>16}  reference",
    ]
    baseline = next((t for t in result.models if t.name.startswith("resnet")), None)
    for timing in result.models:
        relative = f"{result.ratio(baseline, timing, 'train'):.3f}x" if baseline else "-"
        lines.append(
            f"{timing.name:<16} {result.images_per_s(timing, 'train'):>12.1f} "
            f"{result.images_per_s(timing, 'infer'):>12.1f} {relative:>16}  {PAPER_IMAGES_PER_S.get(timing.name, '')}"
        )
    conv, csc, frozen = result.layers
    bound = 2 * result.n_iter
    lines += [
        "",
        f"one layer, 64->64 3x3, batch {result.batch_size}: time relative to one Conv2D "
        f"(bound {bound} = 2 n_iter convolutions; forward alone {2 * result.n_iter - 1})",
        f"{'':<28} {'train step':>10} {'inference':>10}",
        f"{'CSCConv2D':<28} {result.ratio(csc, conv, 'train'):>10.2f} {result.ratio(csc, conv, 'infer'):>10.2f}",
        f"{'CSCConv2D, no power iter.':<28} {result.ratio(frozen, conv, 'train'):>10.2f} "
        f"{result.ratio(frozen, conv, 'infer'):>10.2f}",
        f"{'power iteration share':<28} {1 - 1 / result.ratio(csc, frozen, 'train'):>10.1%}",
    ]
    if result.references:
        lines += ["", "speed-up of the phase synthesis over the transposed convolution (time before / time now)",
                  f"{'variant':<28} {'train step':>10} {'inference':>10} {'train img/s before -> now':>28}"]
        for now, before in result.references:
            rates = f"{result.images_per_s(before, 'train'):.1f} -> {result.images_per_s(now, 'train'):.1f}"
            lines.append(f"{now.name:<28} {result.ratio(before, now, 'train'):>10.2f} "
                         f"{result.ratio(before, now, 'infer'):>10.2f} {rates:>28}")
    return "\n".join(lines)


def main(argv=None):
    """Parses flags, runs the benchmark, prints the report and returns the :class:`Result`."""
    argv = sys.argv[1:] if argv is None else list(argv)
    result = run(parse_args(argv))
    command = f"KERAS_BACKEND={result.backend} python -m benchmarks.csc_speed {shlex.join(argv)}"
    print(format_report(result, command.rstrip()))
    return result


if __name__ == "__main__":
    main()

"""Speed of LRSD: LRSD VGG-19 (rank 1) vs the dense VGG-19, and a pruned S run densely vs sparsely.

Run (both sides of every ratio are measured in the same process, interleaved round by round)::

  KERAS_BACKEND=tensorflow python -m benchmarks.lrsd_speed               # CPU, all variants, a few minutes
  KERAS_BACKEND=jax python -m benchmarks.lrsd_speed                      # no sparse-S variant (tf.sparse)
  KERAS_BACKEND=tensorflow python -m benchmarks.lrsd_speed --quick       # smoke run, no meaning

Measured, as ms per batch (median over rounds) and ratios to the dense network:

* ``train``: one SGD step (``train_on_batch``) of the dense VGG-19 and of the LRSD VGG-19 (rank 1, BN after
  ``U``, l1 on every ``S``).
* ``infer``: inference (``predict_on_batch``) of the dense network; the LRSD network before pruning; after
  pruning, the LRSD network with ``S`` executed densely (two branches, zeros multiplied); the same folded
  into one conv per layer (:func:`sparse_keras.convert.from_lrsd`, ``W = U V + S``); and (TensorFlow only)
  the low-rank branch dense plus ``S`` as a sparse matrix (im2col patches times ``tf.sparse``), which
  exploits the zeros.

Pruning: with ``--weights`` (a trained LRSD ``.keras`` file) every ``S`` is pruned at energy ratio
``--alpha`` as the paper does. Without trained weights an energy mask on random ``S`` keeps most entries, so
by default each ``S`` keeps its ``--s_density`` largest entries instead (0.05: the paper's VGG-19 keeps about
5% of its parameters, N_c/N_o = 5.11%); the speed of a sparse kernel depends on the density, not the values.
"""

import argparse
import dataclasses
import statistics
import sys
import time

import keras
import numpy as np

from sparse_keras import convert
from sparse_keras import lrsd
from sparse_keras import models
from sparse_keras.layers import lrsd as lrsd_layers

QUICK = {"batch_size": 2, "steps": 1, "rounds": 1, "warmup": 1, "model": "vgg7_slim", "input_size": 8}


@dataclasses.dataclass
class Result:
    backend: str
    model: str
    batch_size: int
    s_density: float  # non-zero share of all S entries after pruning
    timings: dict  # variant -> list of ms per batch, one per round

    def median(self, variant):
        return statistics.median(self.timings[variant])

    def ratio(self, variant):
        """Median time of ``variant`` over that of the dense network doing the same (train or infer)."""
        baseline = variant.split(":")[0] + ":dense"
        return self.median(variant) / self.median(baseline)

    def to_markdown(self):
        lines = [
            f"`{self.model}`, backend {self.backend}, batch {self.batch_size}, S density after pruning "
            f"{100 * self.s_density:.2f}%",
            "",
            "| variant | ms / batch (median) | min-max over rounds | ratio to dense |",
            "|---|---|---|---|",
        ]
        for variant, ms in self.timings.items():
            lines.append(
                f"| {variant} | {self.median(variant):.1f} | {min(ms):.1f}-{max(ms):.1f} | {self.ratio(variant):.2f} |"
            )
        return "\n".join(lines) + "\n"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.lrsd_speed", description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="vgg19_slim", help="a sparse_keras.models name with an lrsd option")
    parser.add_argument("--batch_size", type=_positive, default=64)
    parser.add_argument("--input_size", type=_positive, default=32)
    parser.add_argument("--steps", type=_positive, default=3, help="timed calls per round and variant")
    parser.add_argument("--rounds", type=_positive, default=5)
    parser.add_argument("--warmup", type=_positive, default=2)
    parser.add_argument("--weights", default=None, help="a trained LRSD .keras model to prune at --alpha")
    parser.add_argument("--alpha", type=float, default=0.9)
    parser.add_argument("--s_density", type=float, default=0.05)
    parser.add_argument("--output", default=None, help="also write the table to this markdown file")
    parser.add_argument("--quick", action="store_true", help="tiny smoke run (VGG-7 on 8x8 inputs, batch 2, 1 round)")
    args = parser.parse_args(argv)
    if not 0 < args.s_density <= 1:
        parser.error(f"--s_density must lie in (0, 1], got {args.s_density}")
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    return args


def _positive(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def prune_to_density(model, density):
    """Keeps the ``density`` largest-|s| entries of every ``S`` (inference only: no masks installed)."""
    for layer in lrsd.lrsd_layers_of(model):
        s = keras.ops.convert_to_numpy(layer.s_kernel)
        keep = max(1, int(round(density * s.size)))
        threshold = np.sort(np.abs(s).ravel())[-keep]
        layer.s_kernel.assign(np.where(np.abs(s) >= threshold, s, 0).astype(s.dtype))


def _time(fn, steps):
    start = time.perf_counter()
    for _ in range(steps):
        out = fn()
    keras.ops.convert_to_numpy(out if not isinstance(out, (list, tuple)) else out[0])  # wait for async backends
    return 1000 * (time.perf_counter() - start) / steps


def _variants(args):
    shape = (args.input_size, args.input_size, 3)
    dense = models.get(args.model, input_shape=shape)
    if args.weights:
        lrsd_model = keras.saving.load_model(args.weights)
    else:
        lrsd_model = models.get(args.model, input_shape=shape, lrsd=True, rank=1)
    for m in (dense, lrsd_model):
        m.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.batch_size,) + shape).astype("float32")
    y = rng.integers(0, 10, size=args.batch_size)
    variants = {
        "train:dense": lambda: dense.train_on_batch(x, y),
        "train:lrsd": lambda: lrsd_model.train_on_batch(x, y),
    }
    # Inference of the unpruned LRSD model uses its own clone so that pruning below does not change it.
    unpruned = keras.models.clone_model(lrsd_model)
    unpruned.set_weights(lrsd_model.get_weights())
    pruned = keras.models.clone_model(lrsd_model)
    pruned.set_weights(lrsd_model.get_weights())
    if args.weights:
        lrsd.prune_lrsd(pruned, args.alpha)
    else:
        prune_to_density(pruned, args.s_density)
    variants |= {
        "infer:dense": lambda: dense.predict_on_batch(x),
        "infer:lrsd": lambda: unpruned.predict_on_batch(x),
        "infer:pruned, S dense (two branches)": lambda: pruned.predict_on_batch(x),
    }
    folded = convert.from_lrsd(pruned)
    variants["infer:pruned, folded into one conv"] = lambda: folded.predict_on_batch(x)
    if keras.backend.backend() == "tensorflow":
        sparse = with_sparse_s(pruned)
        variants["infer:pruned, S sparse (tf.sparse)"] = lambda: sparse.predict_on_batch(x)
    density = _density(pruned)
    return variants, density


def with_sparse_s(model):
    """TensorFlow only: a copy of a pruned LRSD model whose convs run ``S`` as a sparse matrix.

    Each LRSD conv becomes ``low-rank branch (BN folded into U) + S x`` where ``S x`` is the im2col patch
    matrix (``tf.image.extract_patches``, laid out ``(kh, kw, C)`` like the kernel) times the non-zeros of
    ``S`` (``tf.sparse.sparse_dense_matmul``): work proportional to the non-zeros, as the paper's
    ``O(Kr + rm + beta K m)`` assumes. Other layers (and sparse-only Dense layers) are copied unchanged.
    """
    import tensorflow as tf

    class SparseSConv(keras.layers.Layer):
        def __init__(self, source, **kwargs):
            super().__init__(name=source.name, **kwargs)
            kernel, bias = source.folded_kernel_and_bias()  # only for the BN-folded U and the bias
            s = keras.ops.convert_to_numpy(source.s_kernel)
            self.kh, self.kw, channels, self.filters = s.shape
            self.strides, self.padding = source.strides, source.padding.upper()
            self.bias = tf.constant(keras.ops.convert_to_numpy(bias))
            self.low_rank = None
            if not source.sparse_only:
                bn = source.low_rank_bn
                scale = 1.0 if bn is None else bn.gamma / keras.ops.sqrt(bn.moving_variance + bn.epsilon)
                self.v = tf.constant(keras.ops.convert_to_numpy(source.v_kernel))
                self.u = tf.constant(keras.ops.convert_to_numpy(source.u_kernel * scale))
                self.low_rank = True
            # S^T as a sparse (K, kh*kw*C) matrix, so that S^T @ patches^T is sparse x dense.
            rows, cols = np.nonzero(s.reshape(-1, self.filters).T)
            values = s.reshape(-1, self.filters).T[rows, cols]
            self.s_t = tf.sparse.reorder(
                tf.SparseTensor(
                    np.stack([rows, cols], 1).astype("int64"), values, (self.filters, s.size // self.filters)
                )
            )

        def call(self, x):
            patches = tf.image.extract_patches(
                x, [1, self.kh, self.kw, 1], [1, *self.strides, 1], [1, 1, 1, 1], self.padding
            )
            n, h, w = tf.shape(patches)[0], tf.shape(patches)[1], tf.shape(patches)[2]
            flat = tf.reshape(patches, (-1, patches.shape[-1]))
            y = tf.transpose(tf.sparse.sparse_dense_matmul(self.s_t, flat, adjoint_b=True))
            y = tf.reshape(y, (n, h, w, self.filters)) + self.bias
            if self.low_rank:
                low = tf.nn.conv2d(x, self.v, [1, *self.strides, 1], self.padding)
                y = y + tf.nn.conv2d(low, self.u, 1, "VALID")
            return y

    def clone(layer):
        if isinstance(layer, lrsd_layers.LRSDConv2D):
            return SparseSConv(layer)
        return layer.__class__.from_config(layer.get_config())

    sparse = keras.models.clone_model(model, clone_function=clone)
    for layer in model.layers:
        if layer.weights and not isinstance(layer, lrsd_layers.LRSDConv2D):
            sparse.get_layer(layer.name).set_weights(layer.get_weights())
    return sparse


def _density(model):
    layers = lrsd.lrsd_layers_of(model)
    nnz = sum(int(np.count_nonzero(keras.ops.convert_to_numpy(layer.s_kernel))) for layer in layers)
    return nnz / sum(int(np.prod(layer.s_kernel.shape)) for layer in layers)


def run(args):
    variants, density = _variants(args)
    for fn in variants.values():
        for _ in range(args.warmup):
            fn()
    timings = {name: [] for name in variants}
    names = list(variants)
    for round_index in range(args.rounds):
        order = names if round_index % 2 == 0 else names[::-1]  # drift hits every variant alike
        for name in order:
            timings[name].append(_time(variants[name], args.steps))
    return Result(keras.backend.backend(), args.model, args.batch_size, density, timings)


def main(argv=None):
    args = parse_args(argv)
    result = run(args)
    text = result.to_markdown()
    print(text)
    if args.output:
        from sparse_keras.utils import files

        files.write_text(args.output, text)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])

"""tfmot magnitude pruning of MobileNetV2, the peer baseline of ``benchmarks.mobilenetv2_fashion_mnist``.

tfmot 0.8.1 works with legacy Keras 2 only, so this runs as its own process under ``TF_USE_LEGACY_KERAS=1``
with ``tf_keras.applications.MobileNetV2`` (the same layer names and weight order as Keras 3's)::

  TF_USE_LEGACY_KERAS=1 python -m benchmarks.tfmot_mobilenetv2 --data inputs.npz --macs 0.5

The ``.npz`` holds the very examples and dense pre-trained weights the Keras 3 methods start from
(``x_train``, ``y_train``, ``x_test``, ``y_test`` as 28x28x1 images in [0, 1], and ``w:<layer>:<index>``).
Every layer tfmot prunes (Conv2D and the Dense classifier; tfmot 0.8.1 does not prune DepthwiseConv2D) is
pruned from the first step (``ConstantSparsity``) to one weight sparsity, chosen so that the non-zero
weights leave ``--macs`` of the multiply-adds (:func:`sparsity_for_macs`), then trained for ``--epochs``
with the same optimizer and learning-rate schedule as the Keras 3 side's fine-tuning. The sparsity is unstructured: the stripped
model keeps every weight's slot, so it runs the dense model's multiply-adds; :func:`paper_macs` counts
the multiply-adds by non-zero weights, which only a sparse kernel could skip. Latency is measured for the
dense and the pruned ``tf_keras`` model side by side. Prints one JSON line, the last line of stdout.

:func:`dataset` (TensorFlow only, no Keras) is shared with the Keras 3 side, so both processes see the same
preprocessing and the same batches in the same order.
"""

import argparse
import json
import sys
import time

import numpy as np

from benchmarks.tfmot_baseline import _set_weights_by_name, median_latency_ms, param_counts

IMAGE_SIZE = 32


def dataset(x, y, batch_size, seed=None):
    """``(images, labels)`` batches: 28x28x1 grey images resized (bilinear) to 32x32 and tiled to 3 channels.

    MobileNetV2's five stride-2 stages need at least 32x32 inputs, and it expects colour images; the
    resize runs per batch inside tf.data. ``seed``: shuffle every epoch in a reproducible order (training).
    """
    import tensorflow as tf  # noqa: PLC0415 (both processes have TensorFlow; the core never imports it)

    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if seed is not None:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)

    def to_rgb32(images, labels):
        images = tf.image.resize(images, (IMAGE_SIZE, IMAGE_SIZE), method="bilinear")
        return tf.tile(images, (1, 1, 1, 3)), labels

    return ds.map(to_rgb32, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def paper_macs(model):
    """``(executed, non-zero)`` multiply-adds of the conv, depthwise and dense layers of a ``tf_keras`` model:
    ``output positions * kernel entries`` (executed), or ``* non-zero kernel entries`` (what a sparse kernel
    could skip to; "on paper")."""
    executed = nonzero = 0
    for layer in model.layers:
        kernel = getattr(layer, "depthwise_kernel", None)
        kernel = getattr(layer, "kernel", None) if kernel is None else kernel
        if kernel is None:
            continue
        positions = int(np.prod(layer.output_shape[1:-1] or (1,)))
        values = kernel.numpy()
        executed += positions * values.size
        nonzero += positions * int(np.count_nonzero(values))
    return executed, nonzero


def sparsity_for_macs(model, macs):
    """The weight sparsity of the layers tfmot prunes that leaves ``macs`` of the model's multiply-adds on paper.

    tfmot 0.8.1 prunes ``kernel`` of Conv2D and Dense but nothing of DepthwiseConv2D (its prune registry lists
    no prunable weight for it), so those layers' multiply-adds stay and the others must lose more than
    ``1 - macs``.
    """
    fixed = prunable = 0
    for layer in model.layers:
        positions = int(np.prod(layer.output_shape[1:-1] or (1,)))
        if getattr(layer, "depthwise_kernel", None) is not None:
            fixed += positions * int(np.prod(layer.depthwise_kernel.shape))
        elif getattr(layer, "kernel", None) is not None:
            prunable += positions * int(np.prod(layer.kernel.shape))
    sparsity = 1 - (macs * (fixed + prunable) - fixed) / prunable
    if not 0 <= sparsity < 1:
        raise ValueError(f"macs={macs} cannot be reached by pruning Conv2D/Dense kernels alone (sparsity {sparsity:.3f})")
    return float(sparsity)


def side_by_side_ms(predicts, input_shape, rounds, repeats):
    """Each model's fastest round of median latencies (ms) at batch 1 and 64, the models alternating."""
    best = [{} for _ in predicts]
    for round_index in range(rounds):
        order = range(len(predicts)) if round_index % 2 == 0 else reversed(range(len(predicts)))
        for i in order:
            for batch, ms in median_latency_ms(predicts[i], input_shape, repeats=repeats).items():
                best[i][batch] = min(best[i].get(batch, float("inf")), ms)
    return best


def run(data, args):
    """Prunes to ``args.target_sparsity``, trains ``args.epochs``; returns the results as a dict."""
    import tensorflow as tf  # noqa: PLC0415
    import tensorflow_model_optimization as tfmot  # noqa: PLC0415 (the tfmot extra; this process only)
    import tf_keras  # noqa: PLC0415

    tf.keras.utils.set_random_seed(args.seed)
    sparsity = tfmot.sparsity.keras
    x_train, y_train, x_test, y_test = (data[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    input_shape = (IMAGE_SIZE, IMAGE_SIZE, 3)
    weights = {k: data[k] for k in data.files if k.startswith("w:")}

    def mobilenetv2():
        model = tf_keras.applications.MobileNetV2(weights=None, alpha=args.alpha, input_shape=input_shape, classes=10)
        _set_weights_by_name(model, weights)
        for layer in model.layers:
            if isinstance(layer, tf_keras.layers.BatchNormalization):
                layer.momentum = args.bn_momentum  # as on the Keras 3 side
        assigned = sum(len(layer.weights) for layer in model.layers)
        if assigned != len(weights):
            raise ValueError(f"the .npz holds {len(weights)} weights, tf_keras MobileNetV2 has {assigned}")
        return model

    dense = mobilenetv2()  # the latency reference; the pruning wrappers share (and prune) their layer's weights
    target = args.target_sparsity if args.macs is None else sparsity_for_macs(dense, args.macs)
    steps_per_epoch = -(-len(x_train) // args.batch_size)
    schedule = sparsity.ConstantSparsity(target, begin_step=0, frequency=min(100, steps_per_epoch))
    pruned = sparsity.prune_low_magnitude(mobilenetv2(), pruning_schedule=schedule)
    learning_rate = tf_keras.optimizers.schedules.CosineDecay(args.learning_rate, args.epochs * steps_per_epoch)
    pruned.compile(tf_keras.optimizers.Adam(learning_rate), "sparse_categorical_crossentropy")
    start = time.perf_counter()
    pruned.fit(dataset(x_train, y_train, args.batch_size, seed=args.seed), epochs=args.epochs, verbose=0,
               callbacks=[sparsity.UpdatePruningStep()])
    train_s = time.perf_counter() - start
    model = sparsity.strip_pruning(pruned)
    probabilities = model.predict(dataset(x_test, y_test, 256), verbose=0)
    nonzero, total = param_counts(model.get_weights())
    executed, on_paper = paper_macs(model)
    dense_ms, pruned_ms = side_by_side_ms((dense.predict_on_batch, model.predict_on_batch), input_shape,
                                          args.latency_rounds, args.latency_repeats)
    return {
        "method": "tfmot",
        "target_sparsity": target,
        "accuracy": 100.0 * float(np.mean(np.argmax(probabilities, axis=-1) == y_test)),
        "params": total,
        "nonzero_params": nonzero,
        "macs": executed,
        "paper_macs": on_paper,
        "dense_latency_ms": dense_ms,
        "latency_ms": pruned_ms,
        "train_s": train_s,
        "epochs": args.epochs,
    }


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tfmot_mobilenetv2", description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help=".npz with x_train, y_train, x_test, y_test, w:<layer>:<i>")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--target_sparsity", type=float, help="fraction of zero weights of the pruned layers, [0, 1)")
    target.add_argument("--macs", type=float, help="fraction of the multiply-adds to keep on paper (0, 1]")
    parser.add_argument("--alpha", type=float, default=0.5, help="MobileNetV2 width multiplier")
    parser.add_argument("--bn_momentum", type=float, default=0.99, help="BatchNormalization momentum")
    parser.add_argument("--epochs", type=int, default=3, help="training epochs under pruning")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--learning_rate", type=float, default=1e-3, help="Adam, cosine decay to 0")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--latency_rounds", type=int, default=3)
    parser.add_argument("--latency_repeats", type=int, default=20)
    args = parser.parse_args(argv)
    if args.target_sparsity is not None and not 0 <= args.target_sparsity < 1:
        parser.error(f"--target_sparsity must be in [0, 1), got {args.target_sparsity}")
    if args.macs is not None and not 0 < args.macs <= 1:
        parser.error(f"--macs must be in (0, 1], got {args.macs}")
    for key in ("epochs", "batch_size", "latency_rounds", "latency_repeats"):
        if getattr(args, key) < 1:
            parser.error(f"--{key} must be a positive integer, got {getattr(args, key)}")
    return args


def main(argv=None):
    args = parse_args(argv)
    with np.load(args.data) as data:
        result = run(data, args)
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])

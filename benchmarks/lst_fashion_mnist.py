"""Real data: LST-Net ResNet-20 against ResNet-20 on Fashion-MNIST, same recipe, same data order.

The claim to check: LST-Net reaches at least ResNet-20's test accuracy with fewer parameters (177,954 vs
272,474 trainable on CIFAR; 177,666 vs 272,186 on 28x28x1 images).

Run::

  KERAS_BACKEND=tensorflow python -m benchmarks.lst_fashion_mnist --epochs 15            # the comparison
  KERAS_BACKEND=jax python -m benchmarks.lst_fashion_mnist --epochs 15                   # GPU machine
  python -m benchmarks.lst_fashion_mnist --epochs 1 --steps_per_epoch 20 --eval_examples 2000  # smoke run

Recipe, scaled from LST-Net's CIFAR one (Li et al. 2020): SGD momentum 0.9, batch 128, lr 0.1 divided by 10 after
51% and 77% of the steps (the paper's 82 / 123 of 160 epochs), weight decay 5e-4 on every variable (Keras'
decoupled form, ``w -= lr * wd * w``, which matches PyTorch's coupled SGD decay up to momentum), no
augmentation (the catalogue's default for 28x28 grey images). Both models start from the same seed and see
the same batches in the same order; test accuracy is measured after every epoch (Keras validation pass).

Data: ``sparse_keras.data.pipeline.load("fashion_mnist", ...)`` (tf.data; works as input on both backends).
"""

import argparse
import dataclasses
import shlex
import sys
import time

import keras
import numpy as np

from benchmarks.regularizer_overhead import _positive_int, describe_device
from sparse_keras import models

PAIR = ("lstnet_resnet20", "resnet20")


@dataclasses.dataclass(frozen=True)
class Run:
    model: str
    trainable_params: int
    test_accuracy: tuple  # after each epoch
    seconds_per_epoch: float

    @property
    def final_accuracy(self):
        return self.test_accuracy[-1]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.lst_fashion_mnist", description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=_positive_int, default=15)
    parser.add_argument("--batch_size", type=_positive_int, default=128)
    parser.add_argument("--learning_rate", type=float, default=0.1)
    parser.add_argument("--weight_decay", type=float, default=5e-4)
    parser.add_argument("--steps_per_epoch", type=_positive_int, default=None, help="default: the whole split")
    parser.add_argument("--eval_examples", type=_positive_int, default=None, help="default: the whole test split")
    parser.add_argument("--models", nargs="+", default=PAIR, help="registry names to compare")
    parser.add_argument("--data_dir", default=None, help="tfds data directory")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def run(args):
    from sparse_keras.data import pipeline  # tf.data: imported only when the benchmark runs

    steps = args.steps_per_epoch or 60_000 // args.batch_size
    test_split = "test" if args.eval_examples is None else f"test[:{args.eval_examples}]"
    runs = []
    for name in args.models:
        keras.utils.set_random_seed(args.seed)
        train = pipeline.load("fashion_mnist", "train", args.batch_size, train=True, seed=args.seed,
                              data_dir=args.data_dir)
        test = pipeline.load("fashion_mnist", test_split, 500, train=False, data_dir=args.data_dir)
        model = models.get(name, num_classes=10, input_shape=(28, 28, 1))
        total = args.epochs * steps
        schedule = keras.optimizers.schedules.PiecewiseConstantDecay(
            [int(0.51 * total), int(0.77 * total)],
            [args.learning_rate, args.learning_rate / 10, args.learning_rate / 100],
        )
        model.compile(
            optimizer=keras.optimizers.SGD(schedule, momentum=0.9, weight_decay=args.weight_decay),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        start = time.perf_counter()
        # One fit over the repeated stream, so a shortened epoch continues the data rather than restarting it.
        history = model.fit(train.repeat(), epochs=args.epochs, steps_per_epoch=steps, validation_data=test,
                            verbose=2)
        elapsed = (time.perf_counter() - start) / args.epochs
        accuracies = [float(a) for a in history.history["val_accuracy"]]
        params = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
        runs.append(Run(name, params, tuple(accuracies), elapsed))
    return runs


def format_table(runs, args, command):
    device, _ = describe_device()
    steps = args.steps_per_epoch or "all"
    lines = [
        f"command: {command}",
        f"backend: {keras.backend.backend()}; device: {device}; {args.epochs} epochs x {steps} steps of "
        f"{args.batch_size}; test examples: {args.eval_examples or 'all 10,000'}",
        "",
        "| model | trainable params | final test accuracy | best test accuracy | s/epoch |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in runs:
        lines.append(f"| {r.model} | {r.trainable_params:,} | {r.final_accuracy:.4f} | {max(r.test_accuracy):.4f} "
                     f"| {r.seconds_per_epoch:.0f} |")
    return "\n".join(lines)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    runs = run(args)
    command = f"KERAS_BACKEND={keras.backend.backend()} python -m benchmarks.lst_fashion_mnist {shlex.join(argv)}"
    print(format_table(runs, args, command.rstrip()))
    return runs


if __name__ == "__main__":
    main()

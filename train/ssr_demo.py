r"""Learn a CNN's widths and kernel sizes with seed 004's regularizers, threshold, and report.

  python -m train.ssr_demo --config=configs/demo/fashion_mnist_ssr.py --workdir=runs/demo \
      [--config.epochs=2 --config.kernel_strength=1e-3 ...]

Writes to ``workdir``: ``architecture.{md,csv,json}`` (learned width and kernel sizes per layer,
multiply-adds and parameters), ``architecture.png`` (seed 004 Fig. 1/3 style), ``summary.json``
(accuracies before/after thresholding), ``model.keras`` (the thresholded model) and TensorBoard logs.
"""

import json
import os
import time

from train import common


def check_config(config):
    """Fails before any work with a message naming the bad key and value."""
    for key in ("kernel_strength", "size_strength", "tau", "learning_rate"):
        value = config[key]
        if not isinstance(value, (int, float)) or value < 0 or value != value:
            raise ValueError(f"config.{key} must be a non-negative number, got {value!r}")
    for key in ("epochs", "batch_size"):
        if not isinstance(config[key], int) or config[key] < 1:
            raise ValueError(f"config.{key} must be a positive integer, got {config[key]!r}")
    if config.train_examples is not None and config.train_examples < 1:
        raise ValueError(f"config.train_examples must be None or a positive integer, got {config.train_examples!r}")


def run(config, workdir):
    """The whole job; returns the summary dict that is also written to ``workdir/summary.json``."""
    check_config(config)
    import keras

    import sparse_keras as sk
    from sparse_keras import analysis, io, models
    from sparse_keras import data as data_lib  # TensorFlow-only, so imported here and not by the core

    input_shape, num_classes, _ = data_lib.dataset_info(config.dataset)  # unknown dataset fails here
    model = models.get(config.model, num_classes=num_classes, input_shape=input_shape, **config.model_kwargs)
    common.prepare_workdir(workdir)
    keras.utils.set_random_seed(config.seed)

    split = "train" if config.train_examples is None else f"train[:{config.train_examples}]"
    train = data_lib.load(config.dataset, split, config.batch_size, train=True, seed=config.seed, data_dir=config.data_dir)
    eval_split = data_lib.catalog.spec(config.dataset).eval_split
    test = data_lib.load(config.dataset, eval_split, 500, train=False, data_dir=config.data_dir)

    penalties = []
    if config.kernel_strength > 0:
        penalties.append(sk.KernelGroupLasso(config.kernel_strength))
    if config.size_strength > 0:
        penalties.append(sk.NestedHalfRing(config.size_strength))
    if penalties:
        sk.regularize(model, penalties)

    model.compile(
        optimizer=keras.optimizers.SGD(config.learning_rate, momentum=config.momentum),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    start = time.time()
    model.fit(
        train,
        epochs=config.epochs,
        validation_data=test,
        callbacks=[keras.callbacks.TensorBoard(os.path.join(workdir, "tensorboard"))],
        verbose=1 if os.environ.get("CI") is None else 2,  # progress bar with ETA for people
    )
    train_seconds = time.time() - start
    _, trained_accuracy = model.evaluate(test, verbose=0)

    sk.prune.threshold(model, config.tau)
    _, thresholded_accuracy = model.evaluate(test, verbose=0)
    report = analysis.report(model, config.tau, path=os.path.join(workdir, "architecture"))
    analysis.plot_architecture(
        {f"kernel {config.kernel_strength:g}, size {config.size_strength:g}": report},
        os.path.join(workdir, "architecture.png"),
        title=f"{config.model} on {config.dataset}, tau={config.tau:g}",
    )
    with io.atomic_path(os.path.join(workdir, "model.keras")) as tmp:
        model.save(tmp)

    summary = {
        "model": config.model,
        "dataset": config.dataset,
        "epochs": config.epochs,
        "train_seconds": round(train_seconds, 1),
        "accuracy_trained": round(float(trained_accuracy), 4),
        "accuracy_thresholded": round(float(thresholded_accuracy), 4),
        "macs_base": report.base_macs,
        "macs_learned": report.macs,
        "params_base": report.total_params,
        "params_learned": report.learned_total_params,
        "widths": {r.layer: [r.width, r.base_width] for r in report.layers},
        "kernel_sizes": {r.layer: r.sizes for r in report.layers if r.sizes},
    }
    io.write_text(os.path.join(workdir, "summary.json"), json.dumps(summary, indent=2, default=str))
    print(report.to_markdown())
    print(
        f"Accuracy {trained_accuracy:.4f} trained, {thresholded_accuracy:.4f} after thresholding at tau={config.tau:g}; "
        f"multiply-adds {report.base_macs / max(report.macs, 1):.2f}x fewer, "
        f"parameters {report.total_params:,} -> {report.learned_total_params:,}. Outputs in {workdir}/"
    )
    return summary


if __name__ == "__main__":
    common.main(run, "Path to a config file, e.g. configs/demo/fashion_mnist_ssr.py.")

r"""The generic training binary: any registered model, any sparsity method, under tf.distribute.

  python -m train.train --config=configs/<method>/<experiment>.py --workdir=runs/x \
      [--config.epochs=2 --config.data.train_examples=2048 --config.mixed_precision=mixed_bfloat16 ...]

The config (schema in ``configs/common.py``) names the model, data, optimizer and schedule, and the method
(``train/stages.py``). The run, under ``MirroredStrategy`` over the local devices (``MultiWorkerMirrored``
when ``TF_CONFIG`` names several workers; ``config.strategy`` overrides), executes the method's stages with
the shared custom loop (:mod:`sparse_keras.training.loop`), checkpointing every
``config.checkpoint_every_steps`` steps and at every epoch end. Rerunning the same command after a crash
or a kill resumes from the last checkpoint exactly: weights, optimizer, step, data position, masks and
ADMM state.

Writes to ``workdir``: ``checkpoints/``, ``tensorboard/`` (loss, learning rate, accuracy, per-layer
width and zero-filter fraction), ``report.{md,json}`` (accuracy, params, multiply-adds, per-layer
table), ``architecture.png``, ``model.keras`` and ``saved_model/`` (``model.export``: loads with
``tf.saved_model.load`` and serves ``serve``). With ``config.shrink=True`` the exported model is the
physically smaller one (:func:`sparse_keras.shrinking.shrink`), the report adds its measured CPU speedup,
and ``dense_with_zeros.keras`` keeps the trained model. Bad configs fail before anything is written.
"""

import json
import os

from train import common
from train import stages as stages_lib

POLICIES = (None, "mixed_bfloat16", "mixed_float16")
STRATEGIES = ("auto", "mirrored", "multi_worker", "default")


def _positive_int(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def check_config(config):
    """Every check that needs no data and no model: fails naming the bad key and value."""
    from sparse_keras import models
    from sparse_keras.data import catalog
    from sparse_keras.training import optimizers

    if config.model.name not in models.available():
        raise ValueError(f"config.model.name={config.model.name!r} is not a registered model; known: {models.available()}")
    catalog.spec(config.data.name)  # unknown dataset: names it and lists the known ones
    if not _positive_int(config.data.batch_size):
        raise ValueError(f"config.data.batch_size must be a positive integer, got {config.data.batch_size!r}")
    if config.data.train_examples is not None and not _positive_int(config.data.train_examples):
        raise ValueError(f"config.data.train_examples must be None or a positive integer, got {config.data.train_examples!r}")
    if not isinstance(config.epochs, int) or config.epochs < 0:
        raise ValueError(f"config.epochs must be a non-negative integer, got {config.epochs!r}")
    if config.mixed_precision not in POLICIES:
        raise ValueError(f"config.mixed_precision must be one of {POLICIES}, got {config.mixed_precision!r}")
    if config.get("strategy", "auto") not in STRATEGIES:
        raise ValueError(f"config.strategy must be one of {STRATEGIES}, got {config.get('strategy')!r}")
    every = config.get("checkpoint_every_steps", None)
    if every is not None and not _positive_int(every):
        raise ValueError(f"config.checkpoint_every_steps must be None or a positive integer, got {every!r}")
    optimizers.check(config.optimizer, config.schedule)
    stages_lib.check(config)


def check_data(config):
    """The dataset is there (prepared, or Fashion-MNIST's offline files): else say where we looked."""
    from sparse_keras.data import pipeline

    builder = pipeline.dataset_builder(config.data.name, data_dir=config.data.data_dir)
    if builder.is_prepared():
        return
    if config.data.name == "fashion_mnist" and type(builder).__name__ == "FashionMnistOffline":
        return  # prepared from Debian's dataset-fashion-mnist files on first use
    raise ValueError(
        f"config.data.name={config.data.name!r} is not prepared in {builder.data_dir!r} and this machine may be "
        f"offline. Prepare it once where the internet is reachable (python -c \"import tensorflow_datasets as tfds; "
        f"tfds.builder('{config.data.name}').download_and_prepare()\") and copy the directory, or set "
        "config.data.data_dir to where it is."
    )


class _Summaries:
    """Hook: evaluation and TensorBoard scalars at each epoch end (accuracy, lr, per-layer structure)."""

    def __init__(self, writer, model, optimizer, evaluate, stage, offset, tau, scheme=None):
        self.writer, self.model, self.optimizer, self.evaluate = writer, model, optimizer, evaluate
        self.stage, self.offset, self.tau, self.scheme = stage, offset, tau, scheme

    def on_epoch_end(self, epoch, logs=None):
        import tensorflow as tf

        from sparse_keras import analysis
        from sparse_keras.training import optimizers

        accuracy, test_loss = self.evaluate()
        logs.update(test_accuracy=accuracy, test_loss=test_loss)
        report = analysis.report(self.model, tau=self.tau, scheme=self.scheme)
        step = self.offset + epoch + 1
        with self.writer.as_default():
            tf.summary.scalar("train/loss", logs["loss"], step=step)
            tf.summary.scalar("test/accuracy", accuracy, step=step)
            tf.summary.scalar("test/loss", test_loss, step=step)
            tf.summary.scalar("train/learning_rate", optimizers.current_learning_rate(self.optimizer), step=step)
            tf.summary.scalar("model/macs", report.macs, step=step)
            for row in report.layers:
                tf.summary.scalar(f"width/{row.layer}", row.width, step=step)
                tf.summary.scalar(f"zero_filter_fraction/{row.layer}", 1 - row.width / max(row.base_width, 1), step=step)
                if row.sizes:
                    mean = sum(s * n for s, n in row.sizes.items()) / max(sum(row.sizes.values()), 1)
                    tf.summary.scalar(f"mean_kernel_size/{row.layer}", mean, step=step)
        self.writer.flush()
        print(f"  [{self.stage}] epoch {epoch + 1}: loss {logs['loss']:.4f}, test accuracy {accuracy:.4f}, "
              f"multiply-adds {report.macs:,}/{report.base_macs:,}")


def run(config, workdir, strategy=None):
    """The whole job; returns the report dict also written to ``workdir/report.json``."""
    check_config(config)
    check_data(config)
    import keras
    import tensorflow as tf

    from sparse_keras import analysis, io, models
    from sparse_keras import data as data_lib
    from sparse_keras.training import checkpoint, distribute, loop, optimizers

    common.prepare_workdir(workdir)
    keras.utils.set_random_seed(config.seed)
    if config.get("deterministic", False):
        tf.config.experimental.enable_op_determinism()
    keras.mixed_precision.set_global_policy(config.mixed_precision or "float32")
    strategy = strategy or distribute.make_strategy(config.get("strategy", "auto"))

    info = data_lib.dataset_info(config.data.name)
    examples = config.data.train_examples or info.num_train_examples
    split = "train" if config.data.train_examples is None else f"train[:{config.data.train_examples}]"
    batch = config.data.batch_size
    steps_per_epoch = examples // batch
    if steps_per_epoch < 1:
        raise ValueError(f"config.data.batch_size={batch} is larger than the {examples} training examples")
    augment = None if config.data.augment else "none"

    def normalized(dataset):
        mean, std = config.data.get("normalize_mean"), config.data.get("normalize_std")
        if mean is None and std is None:
            return dataset
        mean = tf.constant(mean if mean is not None else 0.0, tf.float32)
        std = tf.constant(std if std is not None else 1.0, tf.float32)
        return dataset.map(lambda x, y: ((x - mean) / std, y), num_parallel_calls=tf.data.AUTOTUNE)

    def train_data(epoch, stage_index=0):
        # Each epoch its own seed: a resumed run replays exactly the batches an uninterrupted one sees.
        seed = config.seed * 1_000_003 + stage_index * 10_007 + epoch
        return normalized(data_lib.load(config.data.name, split, batch, train=True, seed=seed, augment=augment,
                                        data_dir=config.data.data_dir))

    eval_split = data_lib.catalog.spec(config.data.name).eval_split  # "validation" for ImageNet / Places365
    test = normalized(data_lib.load(config.data.name, eval_split, 500, train=False, data_dir=config.data.data_dir))
    with strategy.scope():
        model = models.get(config.model.name, num_classes=info.num_classes, input_shape=info.input_shape,
                           **dict(config.model.kwargs))
        stages = stages_lib.plan(config, model)
        loss_scale = config.mixed_precision == "mixed_float16"
        # Stages without their own optimizer share one, whose schedule spans all of their epochs.
        shared_epochs = sum(st.epochs for st in stages if st.optimizer is None)
        shared = optimizers.make(config.optimizer, config.schedule, steps_per_epoch, shared_epochs, loss_scale)
        stage_optimizers = [
            shared if st.optimizer is None
            else optimizers.make(st.optimizer, st.schedule, steps_per_epoch, st.epochs, loss_scale)
            for st in stages
        ]
        checkpointers = [
            checkpoint.Checkpointer(os.path.join(workdir, "checkpoints", f"stage{i}"), model, stage_optimizers[i])
            for i in range(len(stages))
        ]
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
    writer = tf.summary.create_file_writer(os.path.join(workdir, "tensorboard"))
    position = next((p for p in (c.saved_position() for c in reversed(checkpointers)) if p is not None), None)
    start_stage, start_epoch, start_batch = position or (0, 0, 0)
    if position is not None:
        print(f"Resuming {workdir}: stage {stages[start_stage].name if start_stage < len(stages) else 'done'}, "
              f"epoch {start_epoch}, batch {start_batch}")
    tau = config.method.get("tau", 0.0)
    transitions_file = os.path.join(workdir, "transitions.json")
    # Kernel sizes are read with the size regularizer's scheme even after fine-tuning took the penalty off.
    scheme = config.method.get("size_scheme") if config.method.get("size_strength", 0) > 0 else None
    offset = 0
    for index, stage in enumerate(stages):
        if index < start_stage:
            offset += stage.epochs
            continue
        checkpointer, optimizer = checkpointers[index], stage_optimizers[index]
        with strategy.scope():
            stage.enter()
        checkpointer.procedures = stage.procedures
        initial_epoch = initial_batch = 0
        if position is not None and index == start_stage:
            checkpointer.restore()
            initial_epoch, initial_batch = start_epoch, start_batch
        hooks = stage.hooks + [
            _Summaries(writer, model, optimizer, lambda: common.evaluate(model, test), stage.name, offset, tau,
                       scheme),
            common.CheckpointHook(checkpointer, index, config.get("checkpoint_every_steps", None)),
        ]
        if initial_epoch < stage.epochs:
            print(f"Stage {index + 1}/{len(stages)}: {stage.name}, {stage.epochs} epochs")
            loop.train(model, optimizer, loss_fn, lambda e, i=index: train_data(e, i), strategy=strategy,
                       epochs=stage.epochs, hooks=hooks, initial_epoch=initial_epoch, initial_batch=initial_batch,
                       progress=config.get("progress", True), summary_writer=writer,
                       log_every_steps=config.get("log_every_steps", 100))
        # Accuracy before and after each transition (LRSD's dense / pruned columns), kept across resumes.
        transitions = _load_json(transitions_file)
        transitions[f"{stage.name}:end"] = common.evaluate(model, test)[0]
        with strategy.scope():
            stage.leave()
        transitions[f"{stage.name}:after_transition"] = common.evaluate(model, test)[0]
        io.write_text(transitions_file, json.dumps(transitions, indent=2))
        checkpointer.procedures = {}
        # The next stage starts from here (its own checkpointer: it may have its own optimizer).
        checkpointers[min(index + 1, len(stages) - 1)].save(index + 1, 0, 0)
        offset += stage.epochs

    accuracy, test_loss = common.evaluate(model, test)
    architecture = analysis.report(model, tau=tau, scheme=scheme)
    architecture.save(os.path.join(workdir, "architecture"))
    analysis.plot_architecture(architecture, os.path.join(workdir, "architecture.png"),
                               title=f"{config.model.name}, {config.method.name}")
    summary = {
        "model": config.model.name,
        "dataset": config.data.name,
        "method": config.method.name,
        "test_accuracy": accuracy,
        "test_loss": test_loss,
        "params": architecture.learned_total_params,
        "base_params": architecture.total_params,
        "macs": architecture.macs,
        "base_macs": architecture.base_macs,
        "replicas": strategy.num_replicas_in_sync,
        "mixed_precision": config.mixed_precision,
        "layers": architecture.to_dict()["layers"],
    }
    if config.method.name == "lrsd":
        _lrsd_outputs(config, model, summary, _load_json(transitions_file), workdir)
    shipped, comparison = model, None
    if config.get("shrink", False):
        shipped, comparison = _shrink(model, info.input_shape, tau, workdir)
        summary["shrunk"] = {
            "params": comparison.params[1],
            "macs": comparison.macs[1],
            "keras_file_bytes": comparison.file_bytes,
            "speedup": {f"{runtime}@{batch}": comparison.speedup(runtime, batch) for runtime, batch in comparison.latency},
            "mac_reduction": comparison.mac_reduction,
            "test_accuracy": common.evaluate(shipped, test)[0],
        }
    common.export(shipped, workdir)
    markdown = _report_markdown(summary, architecture)
    if comparison is not None:
        markdown += "\n## Shrunk model (what is exported)\n\n" + comparison.to_markdown()
    io.write_text(os.path.join(workdir, "report.md"), markdown)
    io.write_text(os.path.join(workdir, "report.json"), json.dumps(summary, indent=2))
    print(open(os.path.join(workdir, "report.md")).read())
    return summary


def _load_json(path):
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def _lrsd_outputs(config, model, summary, transitions, workdir):
    """N_c / N_o, the paper's Tables 1-3 row (dense, pruned, fine-tuned accuracy) and Fig. 5."""
    from sparse_keras import io, lrsd

    counts = lrsd.compression(model)
    percent = lambda key: None if key not in transitions else 100 * transitions[key]  # noqa: E731
    row = lrsd.CompressionResult(
        config.model.name, config.data.name, "LRSD", None, counts.original, counts.compressed,
        percent("train:end"), percent("train:after_transition"), 100 * summary["test_accuracy"],
    )
    summary["lrsd_compression"] = counts.to_dict()
    io.write_text(os.path.join(workdir, "lrsd_table.md"), lrsd.results_table([row]) + "\n" + counts.to_markdown())
    lrsd.plot_layer_ratios(counts, os.path.join(workdir, "lrsd_layers.png"))


def _shrink(model, input_shape, tau, workdir):
    """The physically smaller model and its measured comparison with ``model`` (CPU, TensorFlow)."""
    from sparse_keras import benchmark, io, shrinking

    shrunk = shrinking.shrink(model, tau=tau)
    comparison = benchmark.compare(model, shrunk, input_shape, batch_sizes=(1, 64), runtimes=("tf",))
    with io.atomic_path(os.path.join(workdir, "dense_with_zeros.keras")) as tmp:
        model.save(tmp)
    return shrunk, comparison


def _report_markdown(summary, architecture):
    ratio = summary["base_macs"] / summary["macs"] if summary["macs"] else float("inf")
    head = [
        f"# {summary['model']} on {summary['dataset']}, method {summary['method']}",
        "",
        f"Test accuracy {summary['test_accuracy']:.4f}; parameters {summary['params']:,} of {summary['base_params']:,}; "
        f"multiply-adds {summary['macs']:,} of {summary['base_macs']:,} ({ratio:.2f}x fewer when zero structures are skipped); "
        f"{summary['replicas']} replica(s), precision {summary['mixed_precision'] or 'float32'}.",
        "",
    ]
    return "\n".join(head) + architecture.to_markdown()


if __name__ == "__main__":
    common.main(run, "Path to a config file under configs/ (schema: configs/common.py).")

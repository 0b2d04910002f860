r"""The generic training binary: any registered model, any sparsity method, under tf.distribute.

  python -m train.train --config=configs/<method>/<experiment>.py --workdir=runs/x \
      [--config.epochs=2 --config.data.train_examples=2048 --config.mixed_precision=mixed_bfloat16 ...]

The config (schema in ``configs/common.py``) names the model, data, optimizer and schedule, and the method
(``train/stages.py``). The run, under ``MirroredStrategy`` over the local devices (``MultiWorkerMirrored``
when ``TF_CONFIG`` names several workers; ``config.strategy`` overrides), executes the method's stages with
the shared custom loop (:mod:`sparse_keras.training.loop`), checkpointing every
``config.checkpoint_every_steps`` steps and at every epoch end. Rerunning the same command after a crash
or a kill resumes from the newest intact checkpoint exactly: weights, optimizer, step, data position, masks
and ADMM state; rerunning a finished run leaves it alone; another config in a used workdir is refused
(``--overwrite`` to replace it). See docs/runs.md.

Writes to ``workdir``: ``checkpoints/``, ``tensorboard/`` (loss, learning rate, accuracy, per-layer
width and zero-filter fraction), ``report.{md,json}`` (accuracy, params, multiply-adds, per-layer
table), ``architecture.png``, ``model.keras`` and ``saved_model/`` (``model.export``: loads with
``tf.saved_model.load`` and serves ``serve``). With ``config.shrink=True`` the exported model is the
physically smaller one (:func:`sparse_keras.shrinking.shrink`), the report adds its measured CPU speedup,
and ``dense_with_zeros.keras`` keeps the trained model. Also ``config.json`` (the run's identity) and, last,
``finished.json``. Bad configs fail before anything is written.
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
    if config.data.name not in catalog.CATALOG:
        raise ValueError(f"config.data.name={config.data.name!r} is not a known dataset; known: {sorted(catalog.CATALOG)}")
    if not _positive_int(config.data.batch_size):
        raise ValueError(f"config.data.batch_size must be a positive integer, got {config.data.batch_size!r}")
    if config.data.train_examples is not None and not _positive_int(config.data.train_examples):
        raise ValueError(f"config.data.train_examples must be None or a positive integer, got {config.data.train_examples!r}")
    if not _positive_int(config.epochs):  # every method's main training; 0 would export an untrained model
        raise ValueError(f"config.epochs must be a positive integer, got {config.epochs!r}")
    if not isinstance(config.seed, int) or isinstance(config.seed, bool) or config.seed < 0:
        raise ValueError(f"config.seed must be a non-negative integer, got {config.seed!r}")
    _check_data_sizes(config)
    if config.mixed_precision not in POLICIES:
        raise ValueError(f"config.mixed_precision must be one of {POLICIES}, got {config.mixed_precision!r}")
    if config.get("strategy", "auto") not in STRATEGIES:
        raise ValueError(f"config.strategy must be one of {STRATEGIES}, got {config.get('strategy')!r}")
    every = config.get("checkpoint_every_steps", None)
    if every is not None and not _positive_int(every):
        raise ValueError(f"config.checkpoint_every_steps must be None or a positive integer, got {every!r}")
    optimizers.check(config.optimizer, config.schedule)
    stages_lib.check(config)


def _check_data_sizes(config):
    """Examples against the split, the batch against the examples, the normalisation, the data directory."""
    import math

    from sparse_keras.data import catalog

    split_size = catalog.spec(config.data.name).num_train_examples
    if config.data.train_examples is not None and config.data.train_examples > split_size:
        raise ValueError(f"config.data.train_examples={config.data.train_examples} is larger than the "
                         f"{split_size} examples of {config.data.name}'s train split")
    examples = config.data.train_examples or split_size
    if config.data.batch_size > examples:
        raise ValueError(f"config.data.batch_size={config.data.batch_size} is larger than the {examples} training "
                         "examples (config.data.train_examples): not one step per epoch")
    for key in ("normalize_mean", "normalize_std"):
        value = config.data.get(key)
        values = value if isinstance(value, (tuple, list)) else [value]
        ok = value is None or all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)
        if not ok or (key == "normalize_std" and value is not None and min(values) <= 0):
            raise ValueError(f"config.data.{key} must be None or finite numbers{' > 0' if 'std' in key else ''} "
                             f"(one, or one per channel), got {value!r}")
    data_dir = config.data.data_dir
    if data_dir is not None and os.path.exists(data_dir) and not os.path.isdir(data_dir):
        raise ValueError(f"config.data.data_dir={data_dir!r} is a file, not a directory")


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

    def __init__(self, writer, model, optimizer, evaluate, stage, offset, tau, scheme=None, history_file=None):
        self.writer, self.model, self.optimizer, self.evaluate = writer, model, optimizer, evaluate
        self.stage, self.offset, self.tau, self.scheme = stage, offset, tau, scheme
        self.history_file = history_file

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
        row = {"epoch": step, "stage": self.stage, "data_loss": logs["loss"] - logs.get("penalty", 0.0),
               "penalty": logs.get("penalty", 0.0), "test_accuracy": accuracy, "macs": report.macs,
               "base_macs": report.base_macs,
               **{k: v for k, v in logs.items() if k.startswith("admm_") and isinstance(v, (int, float))}}
        if self.history_file:
            from sparse_keras import io

            history = _load_json(self.history_file)
            history[str(step)] = row  # keyed by epoch: an epoch run again after a resume replaces its row
            io.write_text(self.history_file, json.dumps(history, indent=2))
        print("  " + _epoch_line(row))


def _epoch_line(row):
    """One epoch in words: the data loss and the penalty apart, ADMM's residual, accuracy, multiply-adds."""
    parts = [f"[{row['stage']}] epoch {row['epoch']}: data loss {row['data_loss']:.4f}"]
    if row["penalty"]:
        parts.append(f"penalty {row['penalty']:.4f}")
    if "admm_primal_residual" in row:
        parts.append(f"ADMM ||W - F|| {row['admm_primal_residual']:.4g}")
    parts.append(f"test accuracy {row['test_accuracy']:.4f}")
    parts.append(f"multiply-adds {row['macs'] / max(row['base_macs'], 1):.1%} of {row['base_macs']:,}")
    return ", ".join(parts)


def _history_markdown(rows):
    lines = ["| epoch | stage | data loss | penalty | ADMM ||W - F|| | test accuracy | multiply-adds left |",
             "|---:|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        residual = f"{r['admm_primal_residual']:.4g}" if "admm_primal_residual" in r else "-"
        lines.append(f"| {r['epoch']} | {r['stage']} | {r['data_loss']:.4f} | {r['penalty']:.4f} | {residual} | "
                     f"{r['test_accuracy']:.4f} | {r['macs'] / max(r['base_macs'], 1):.1%} |")
    return "\n".join(lines) + "\n"


# Keys that change how a run is watched, not what it computes: a rerun may change them.
COSMETIC_KEYS = ("progress", "log_every_steps", "checkpoint_every_steps")
OUTPUTS = ("architecture.md", "architecture.png", "training.png", "model.keras", "saved_model", "report.md",
           "report.json")


def run(config, workdir, strategy=None, overwrite=False):
    """The whole job; returns the report dict also written to ``workdir/report.json``.

    Everything is checked and built before the workdir is touched; then the workdir is claimed for this
    config (:func:`sparse_keras.training.workdir.claim`: identity, lock). A finished run is left alone;
    an unfinished one resumes from its newest intact checkpoint, and the outputs are written from the
    restored trained state.
    """
    from sparse_keras.training import workdir as workdir_lib

    try:
        check_config(config)
        check_data(config)
        job = _Job(config, strategy)
    except ValueError as error:
        raise workdir_lib.RunError(str(error)) from error
    with workdir_lib.claim(workdir, config.to_dict(), overwrite=overwrite, ignore=COSMETIC_KEYS):
        if workdir_lib.finished(workdir):
            print(f"{workdir}: this run finished earlier; its results are left as they are")
            return _load_json(os.path.join(workdir, "report.json"))
        job.train(workdir)
        summary = _write_outputs(config, job, workdir)
        workdir_lib.kill_point("finished")
        workdir_lib.mark_finished(workdir, OUTPUTS + (("dense_with_zeros.keras",) if config.get("shrink") else ()))
    return summary


class _Job:
    """A run built and checked but not started: model, stages, optimizers, data (nothing written yet)."""

    def __init__(self, config, strategy):
        import keras
        import tensorflow as tf

        from sparse_keras import data as data_lib
        from sparse_keras.training import distribute

        self.config = config
        keras.utils.set_random_seed(config.seed)
        if config.get("deterministic", False):
            tf.config.experimental.enable_op_determinism()
        keras.mixed_precision.set_global_policy(config.mixed_precision or "float32")
        self.strategy = strategy or distribute.make_strategy(config.get("strategy", "auto"))
        self.info = data_lib.dataset_info(config.data.name)
        self.steps_per_epoch = _examples(config) // config.data.batch_size
        eval_split = data_lib.catalog.spec(config.data.name).eval_split  # "validation" for ImageNet / Places365
        self.test = self._normalized(data_lib.load(config.data.name, eval_split, 500, train=False,
                                                   data_dir=config.data.data_dir))
        self.tau = config.method.get("tau", 0.0)
        # Kernel sizes are read with the size regularizer's scheme even after fine-tuning took the penalty off.
        self.scheme = config.method.get("size_scheme") if config.method.get("size_strength", 0) > 0 else None
        self._build_model()

    def _normalized(self, dataset):
        import tensorflow as tf

        mean, std = self.config.data.get("normalize_mean"), self.config.data.get("normalize_std")
        if mean is None and std is None:
            return dataset
        mean = tf.constant(mean if mean is not None else 0.0, tf.float32)
        std = tf.constant(std if std is not None else 1.0, tf.float32)
        return dataset.map(lambda x, y: ((x - mean) / std, y), num_parallel_calls=tf.data.AUTOTUNE)

    def train_data(self, epoch, stage_index=0):
        from sparse_keras import data as data_lib

        config = self.config
        split = "train" if config.data.train_examples is None else f"train[:{config.data.train_examples}]"
        augment = None if config.data.augment else "none"
        # Each epoch its own seed: a resumed run replays exactly the batches an uninterrupted one sees.
        seed = config.seed * 1_000_003 + stage_index * 10_007 + epoch
        return self._normalized(data_lib.load(config.data.name, split, config.data.batch_size, train=True,
                                              seed=seed, augment=augment, data_dir=config.data.data_dir))

    def _build_model(self):
        from sparse_keras import models
        from sparse_keras.training import optimizers

        config = self.config
        with self.strategy.scope():
            try:
                self.model = models.get(config.model.name, num_classes=self.info.num_classes,
                                        input_shape=self.info.input_shape, **dict(config.model.kwargs))
            except (TypeError, ValueError) as error:
                raise ValueError(f"config.model.kwargs={dict(config.model.kwargs)!r} cannot build "
                                 f"config.model.name={config.model.name!r}: {error}") from None
            self.stages = stages_lib.plan(config, self.model)
            loss_scale = config.mixed_precision == "mixed_float16"
            # Stages without their own optimizer share one, whose schedule spans all of their epochs.
            shared_epochs = sum(st.epochs for st in self.stages if st.optimizer is None)
            shared = optimizers.make(config.optimizer, config.schedule, self.steps_per_epoch, shared_epochs,
                                     loss_scale)
            self.optimizers = [
                shared if st.optimizer is None
                else optimizers.make(st.optimizer, st.schedule, self.steps_per_epoch, st.epochs, loss_scale)
                for st in self.stages
            ]

    def evaluate(self, model=None):
        return common.evaluate(model or self.model, self.test)

    def train(self, workdir):
        """Every stage, resumed from the newest intact checkpoint; ends with the trained state restored."""
        import keras
        import tensorflow as tf

        from sparse_keras import io
        from sparse_keras.training import checkpoint, loop

        config, stages, model = self.config, self.stages, self.model
        with self.strategy.scope():
            checkpointers = [
                checkpoint.Checkpointer(os.path.join(workdir, "checkpoints", f"stage{i}"), model, self.optimizers[i])
                for i in range(len(stages))
            ]
        loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
        writer = tf.summary.create_file_writer(os.path.join(workdir, "tensorboard"))
        position = next((p for p in (c.saved_position() for c in reversed(checkpointers)) if p is not None), None)
        start_stage, start_epoch, start_batch = position or (0, 0, 0)
        transitions_file = os.path.join(workdir, "transitions.json")
        if position is None:
            # The untrained model's accuracy: the report warns when training ends below it.
            io.write_text(transitions_file, json.dumps({"initial": self.evaluate()[0]}, indent=2))
        else:
            print(f"Resuming {workdir}: stage {stages[start_stage].name if start_stage < len(stages) else 'done'}, "
                  f"epoch {start_epoch}, batch {start_batch}")
        if start_stage >= len(stages):
            # Training ended earlier (a kill while the outputs were written): its final state, not a fresh model.
            checkpointers[-1].restore()
            return
        offset = 0
        for index, stage in enumerate(stages):
            if index < start_stage:
                offset += stage.epochs
                continue
            checkpointer, optimizer = checkpointers[index], self.optimizers[index]
            with self.strategy.scope():
                stage.enter()
            checkpointer.procedures = stage.procedures
            initial_epoch = initial_batch = 0
            if position is not None and index == start_stage:
                checkpointer.restore()
                initial_epoch, initial_batch = start_epoch, start_batch
            hooks = stage.hooks + [
                _Summaries(writer, model, optimizer, self.evaluate, stage.name, offset, self.tau, self.scheme,
                           history_file=os.path.join(workdir, "history.json")),
                common.CheckpointHook(checkpointer, index, config.get("checkpoint_every_steps", None)),
            ]
            if initial_epoch < stage.epochs:
                print(f"Stage {index + 1}/{len(stages)}: {stage.name}, {stage.epochs} epochs")
                loop.train(model, optimizer, loss_fn, lambda e, i=index: self.train_data(e, i),
                           strategy=self.strategy, epochs=stage.epochs, hooks=hooks, initial_epoch=initial_epoch,
                           initial_batch=initial_batch, progress=config.get("progress", True),
                           summary_writer=writer, log_every_steps=config.get("log_every_steps", 100))
            # Accuracy before and after each transition (LRSD's dense / pruned columns), kept across resumes.
            transitions = _load_json(transitions_file)
            transitions[f"{stage.name}:end"] = self.evaluate()[0]
            with self.strategy.scope():
                stage.leave()
            transitions[f"{stage.name}:after_transition"] = self.evaluate()[0]
            io.write_text(transitions_file, json.dumps(transitions, indent=2))
            checkpointer.procedures = {}
            # The next stage starts from here (its own checkpointer: it may have its own optimizer).
            checkpointers[min(index + 1, len(stages) - 1)].save(index + 1, 0, 0)
            offset += stage.epochs


def _examples(config):
    from sparse_keras.data import catalog

    return config.data.train_examples or catalog.spec(config.data.name).num_train_examples


def _warnings(summary, architecture, initial_accuracy):
    """What makes a finished run's results suspect, for the top of its report (and stderr)."""
    out = []
    gone = [row.layer for row in architecture.layers if row.width == 0]
    if gone:
        out.append(f"{len(gone)} of {len(architecture.layers)} layers pruned to width 0 ({', '.join(gone[:6])}"
                   f"{', ...' if len(gone) > 6 else ''}): the method's strength (mu, kernel_strength, alpha) "
                   "removed whole layers, and the model cannot pass anything through them")
    if initial_accuracy is not None and summary["test_accuracy"] <= initial_accuracy:
        out.append(f"test accuracy {summary['test_accuracy']:.4f} is not above the untrained model's "
                   f"{initial_accuracy:.4f}: this model is no better than its initialisation")
    return out


def _write_outputs(config, job, workdir):
    """Reports and exports of the trained (restored) model, each written atomically."""
    import sys

    from sparse_keras import analysis, io
    from sparse_keras.training import workdir as workdir_lib

    model, tau = job.model, job.tau
    workdir_lib.kill_point("trained")
    accuracy, test_loss = job.evaluate()
    architecture = analysis.report(model, tau=tau, scheme=job.scheme)
    workdir_lib.kill_point("architecture")
    architecture.save(os.path.join(workdir, "architecture"))
    analysis.plot_architecture(architecture, os.path.join(workdir, "architecture.png"),
                               title=f"{config.model.name}, {config.method.name}")
    transitions = _load_json(os.path.join(workdir, "transitions.json"))
    history = [row for _, row in sorted(_load_json(os.path.join(workdir, "history.json")).items(), key=lambda kv: int(kv[0]))]
    if history:
        from sparse_keras import visualize

        visualize.plot_training(history, os.path.join(workdir, "training.png"),
                                title=f"{config.model.name} on {config.data.name}, {config.method.name}: stage by stage")
    summary = {
        "model": config.model.name,
        "dataset": config.data.name,
        "method": config.method.name,
        "test_accuracy": accuracy,
        "test_loss": test_loss,
        "initial_test_accuracy": transitions.get("initial"),
        "params": architecture.learned_total_params,
        "base_params": architecture.total_params,
        "macs": architecture.macs,
        "base_macs": architecture.base_macs,
        "replicas": job.strategy.num_replicas_in_sync,
        "mixed_precision": config.mixed_precision,
        "layers": architecture.to_dict()["layers"],
        "history": history,
    }
    summary["warnings"] = _warnings(summary, architecture, transitions.get("initial"))
    for warning in summary["warnings"]:
        print(f"WARNING: {warning}", file=sys.stderr)
    if config.method.name == "lrsd":
        _lrsd_outputs(config, model, summary, transitions, workdir)
    shipped, comparison = model, None
    if config.get("shrink", False):
        workdir_lib.kill_point("dense_with_zeros")
        shipped, comparison = _shrink(model, job.info.input_shape, tau, workdir)
        summary["shrunk"] = {
            "params": comparison.params[1],
            "macs": comparison.macs[1],
            "keras_file_bytes": comparison.file_bytes,
            "speedup": {f"{runtime}@{batch}": comparison.speedup(runtime, batch) for runtime, batch in comparison.latency},
            "mac_reduction": comparison.mac_reduction,
            "test_accuracy": job.evaluate(shipped)[0],
        }
    common.export(shipped, workdir)
    markdown = _report_markdown(summary, architecture)
    if history:
        markdown += "\n## Training, epoch by epoch\n\n" + _history_markdown(history)
    if comparison is not None:
        markdown += "\n## Shrunk model (what is exported)\n\n" + comparison.to_markdown()
    workdir_lib.kill_point("report")
    io.write_text(os.path.join(workdir, "report.md"), markdown)
    io.write_text(os.path.join(workdir, "report.json"), json.dumps(summary, indent=2))
    print(markdown)
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
    warnings = [f"**WARNING: {w}.**" for w in summary.get("warnings", [])]
    ratio = summary["base_macs"] / summary["macs"] if summary["macs"] else float("inf")
    head = [
        f"# {summary['model']} on {summary['dataset']}, method {summary['method']}",
        "",
        f"Test accuracy {summary['test_accuracy']:.4f}; parameters {summary['params']:,} of {summary['base_params']:,}; "
        f"multiply-adds {summary['macs']:,} of {summary['base_macs']:,} ({ratio:.2f}x fewer when zero structures are skipped); "
        f"{summary['replicas']} replica(s), precision {summary['mixed_precision'] or 'float32'}.",
        "",
    ]
    if warnings:
        head[1:1] = ["", *warnings]
    return "\n".join(head) + architecture.to_markdown()


if __name__ == "__main__":
    common.main(run, "Path to a config file under configs/ (schema: configs/common.py).")

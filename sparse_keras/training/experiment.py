"""One experiment from a config: any registered model, any sparsity method, under tf.distribute.

:func:`run` takes a config of the one schema (``configs/common.py``): the model, data, optimizer and schedule,
and the method (:mod:`.stages`). The run, under ``MirroredStrategy`` over the local devices
(``MultiWorkerMirrored`` when ``TF_CONFIG`` names several workers; ``config.strategy`` overrides), executes
the method's stages with the shared custom loop (:mod:`.loop`), checkpointing every
``config.checkpoint_every_steps`` steps and at every epoch end. Running it again after a crash or a kill
resumes from the newest intact checkpoint exactly: weights, optimizer, step, data position, masks and ADMM
state; a finished run is left alone; another config in a used workdir is refused (``overwrite`` replaces
it). See docs/runs.md. What it writes: :mod:`.reports`; ``config.json`` (the run's identity) first and
``finished.json`` last. Bad configs fail before anything is written.
"""

import json
import math
import os

import keras
import tensorflow as tf

from sparse_keras import analysis
from sparse_keras import data as data_lib
from sparse_keras import models
from sparse_keras.data import catalog, pipeline
from sparse_keras.sparsity import shrunk_twin as twin_lib
from sparse_keras.training import checkpoint, distribute, evaluation, loop, optimizers, reports, stages
from sparse_keras.training import workdir as workdir_lib
from sparse_keras.utils import files

POLICIES = (None, "mixed_bfloat16", "mixed_float16")
STRATEGIES = ("auto", "mirrored", "multi_worker", "default")
# Keys that change how a run is watched, not what it computes: a rerun may change them.
COSMETIC_KEYS = ("progress", "log_every_steps", "checkpoint_every_steps")


def _positive_int(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def check_config(config):
    """Every check that needs no data and no model: fails naming the bad key and value."""
    if config.model.name not in models.available():
        raise ValueError(f"config.model.name={config.model.name!r} is not a registered model; known: {models.available()}")
    if config.data.name not in catalog.CATALOG:
        raise ValueError(f"config.data.name={config.data.name!r} is not a known dataset; known: {sorted(catalog.CATALOG)}")
    if not _positive_int(config.data.batch_size):
        raise ValueError(f"config.data.batch_size must be a positive integer, got {config.data.batch_size!r}")
    if config.data.train_examples is not None and not _positive_int(config.data.train_examples):
        raise ValueError(f"config.data.train_examples must be None or a positive integer, got {config.data.train_examples!r}")
    # Every method's main training; 0 would export an untrained model, unless the model is a trained one.
    trained = config.model.name == "keras_file" and not config.model.kwargs.get("reinitialize", False)
    if not (_positive_int(config.epochs) or (trained and config.epochs == 0)):
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
    runtimes = config.get("latency_runtimes", ("tf",))
    if (isinstance(runtimes, str) or not runtimes
            or any(r not in reports.LATENCY_RUNTIMES for r in runtimes)):
        raise ValueError(f"config.latency_runtimes must be a non-empty tuple of {reports.LATENCY_RUNTIMES}, "
                         f"got {runtimes!r}")
    optimizers.check(config.optimizer, config.schedule)
    stages.check(config)


def _check_data_sizes(config):
    """Examples against the split, the batch against the examples, the normalisation, the data directory."""
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


def run(config, workdir, strategy=None, overwrite=False):
    """The whole job; returns the report dict also written to ``workdir/report.json``.

    Everything is checked and built before the workdir is touched; then the workdir is claimed for this
    config (:func:`sparse_keras.training.workdir.claim`: ``config.json``, lock). A finished run is left
    alone; an unfinished one resumes from its newest intact checkpoint, and the outputs are written from the
    restored trained state.
    """
    try:
        check_config(config)
        check_data(config)
        job = Job(config, strategy)
    except ValueError as error:
        raise workdir_lib.RunError(str(error)) from error
    with workdir_lib.claim(workdir, config.to_dict(), overwrite=overwrite, ignore=COSMETIC_KEYS):
        if workdir_lib.finished(workdir):
            print(f"{workdir}: this run finished earlier; its results are left as they are")
            return reports.load_json(os.path.join(workdir, "report.json"))
        job.train(workdir)
        summary, outputs = reports.write_outputs(config, job, workdir)
        workdir_lib.kill_point("finished")
        workdir_lib.mark_finished(workdir, outputs)
    return summary


def epoch_seed(seed, stage_index, epoch):
    """The data seed of one epoch of one stage: a resumed run replays exactly the batches an uninterrupted
    one sees."""
    return seed * 1_000_003 + stage_index * 10_007 + epoch


class CheckpointHook:
    """Hook: a checkpoint every N steps and at each epoch end, at the run's position.

    ``before_save()`` runs before each checkpoint (a shrunk twin's write-back into the saved model).
    """

    def __init__(self, checkpointer, stage_index, every_steps, before_save=None):
        self.checkpointer, self.stage_index, self.every = checkpointer, stage_index, every_steps
        self.before_save = before_save or (lambda: None)

    def on_train_batch_end(self, step, logs):
        if loop.is_time(step, self.every):
            self.before_save()
            self.checkpointer.save(self.stage_index, logs["epoch"], logs["batch"])

    def on_epoch_end(self, epoch, logs=None):
        self.before_save()
        self.checkpointer.save(self.stage_index, epoch + 1, 0)


class _Call:
    """Hook: ``fn()`` at each epoch end."""

    def __init__(self, fn):
        self.fn = fn

    def on_epoch_end(self, epoch, logs=None):
        self.fn()


class _ShrunkOptimizerState:
    """Checkpointed procedure: the optimizer state of a stage that trains a shrunk twin.

    The twin itself is not saved: its weights are written back into the model before every checkpoint,
    and a resumed run shrinks the restored model again. Its optimizer's variables (step count, momenta)
    are saved here and put back once the twin's optimizer is built (:meth:`bind`).
    """

    def __init__(self):
        self.optimizer, self._pending = None, None

    @property
    def attached(self):
        return self.optimizer is not None

    def bind(self, optimizer):
        self.optimizer = optimizer
        if self._pending is not None:
            variables = optimizer.variables
            if len(variables) != len(self._pending):
                raise ValueError(f"the checkpoint holds {len(self._pending)} optimizer variables of the shrunk model, "
                                 f"its optimizer has {len(variables)}")
            for variable, value in zip(variables, self._pending):
                variable.assign(value)
            self._pending = None

    def get_state(self):
        return {str(i): keras.ops.convert_to_numpy(v) for i, v in enumerate(self.optimizer.variables)}, {}

    def set_state(self, arrays, meta):
        self._pending = [arrays[str(i)] for i in range(len(arrays))]


def _macs_line(model, shrunk):
    base, small = analysis.report(model).base_macs, analysis.report(shrunk).base_macs
    return f"{small:,} of {base:,} multiply-adds"


class Job:
    """A run built and checked but not started: model, stages, optimizers, data (nothing written yet)."""

    def __init__(self, config, strategy):
        self.config = config
        keras.utils.set_random_seed(config.seed)
        if config.get("deterministic", False):
            tf.config.experimental.enable_op_determinism()
        keras.mixed_precision.set_global_policy(config.mixed_precision or "float32")
        self.strategy = strategy or distribute.make_strategy(config.get("strategy", "auto"))
        self.info = data_lib.dataset_info(config.data.name)
        spec = catalog.spec(config.data.name)
        self.steps_per_epoch = (config.data.train_examples or spec.num_train_examples) // config.data.batch_size
        # spec.eval_split: "validation" for ImageNet / Places365
        self.test = self._normalized(data_lib.load(config.data.name, spec.eval_split, 500, train=False,
                                                   data_dir=config.data.data_dir))
        self.evaluator = evaluation.Evaluator(self.test)
        self._train_passes = None  # data_lib.epoch_loader of the training split, made on first use
        self.tau, self.scheme = stages.report_options(config)
        self._build_model()

    def _normalized(self, dataset):
        mean, std = self.config.data.get("normalize_mean"), self.config.data.get("normalize_std")
        if mean is None and std is None:
            return dataset
        mean = tf.constant(mean if mean is not None else 0.0, tf.float32)
        std = tf.constant(std if std is not None else 1.0, tf.float32)
        return dataset.map(lambda x, y: ((x - mean) / std, y), num_parallel_calls=tf.data.AUTOTUNE)

    def train_data(self, epoch, stage_index=0):
        """The batches of one epoch of one stage; the stored examples are read and decoded once per run."""
        config = self.config
        if self._train_passes is None:
            split = "train" if config.data.train_examples is None else f"train[:{config.data.train_examples}]"
            self._train_passes = data_lib.epoch_loader(
                config.data.name, split, config.data.batch_size, train=True,
                augment=None if config.data.augment else "none", data_dir=config.data.data_dir,
                read_seed=epoch_seed(config.seed, 0, 0))
        return self._normalized(self._train_passes(epoch_seed(config.seed, stage_index, epoch)))

    def _build_model(self):
        config = self.config
        with self.strategy.scope():
            try:
                self.model = models.get(config.model.name, num_classes=self.info.num_classes,
                                        input_shape=self.info.input_shape, **dict(config.model.kwargs))
            except (TypeError, ValueError) as error:
                raise ValueError(f"config.model.kwargs={dict(config.model.kwargs)!r} cannot build "
                                 f"config.model.name={config.model.name!r}: {error}") from None
            self.stages = stages.plan(config, self.model, evaluate=self.evaluate)
            loss_scale = config.mixed_precision == "mixed_float16"
            # Stages without their own optimizer share one, whose schedule spans all of their epochs.
            shared_epochs = sum(st.epochs for st in self.stages if st.optimizer is None)
            shared = optimizers.make(config.optimizer, config.schedule, self.steps_per_epoch, shared_epochs,
                                     loss_scale)
            self.optimizers = [shared if st.optimizer is None else self._own_optimizer(st) for st in self.stages]

    def _own_optimizer(self, stage):
        """A fresh optimizer of a stage that has its own (create it inside the strategy's scope)."""
        loss_scale = self.config.mixed_precision == "mixed_float16"
        return optimizers.make(stage.optimizer, stage.schedule, self.steps_per_epoch, stage.epochs, loss_scale)

    def _shrunk_twin(self, index, state):
        """``(twin, optimizer)`` of stage ``index``, which trains the shrunk model; ``(None, the stage's
        optimizer)``, with a warning, where the model's shrink cannot be written back (then it trains masked)."""
        stage = self.stages[index]
        with self.strategy.scope():
            try:
                twin = twin_lib.ShrunkTwin(self.model, tau=self.tau, scheme=self.scheme)
            except twin_lib.UnmappableShrink as error:
                print(f"WARNING: stage {stage.name} trains the masked model, not the shrunk one: {error}")
                return None, self.optimizers[index]
            optimizer = self._own_optimizer(stage)
            optimizer.build(twin.shrunk.trainable_variables)
        state.bind(optimizer)
        return twin, optimizer

    def evaluate(self, model=None):
        """``(accuracy, loss)`` on the test split; repeated calls on unchanged weights cost nothing."""
        return self.evaluator(model or self.model)

    def train(self, workdir):
        """Every stage, resumed from the newest intact checkpoint; ends with the trained state restored."""
        config, stages_, model = self.config, self.stages, self.model
        with self.strategy.scope():
            checkpointers = [
                checkpoint.Checkpointer(os.path.join(workdir, "checkpoints", f"stage{i}"), model, self.optimizers[i])
                for i in range(len(stages_))
            ]
        loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
        writer = tf.summary.create_file_writer(os.path.join(workdir, "tensorboard"))
        position = next((p for p in (c.saved_position() for c in reversed(checkpointers)) if p is not None), None)
        start_stage, start_epoch, start_batch = position or (0, 0, 0)
        transitions_file = os.path.join(workdir, "transitions.json")
        if position is None:
            # The untrained model's accuracy: the report warns when training ends below it.
            files.write_text(transitions_file, json.dumps({"initial": self.evaluate()[0]}, indent=2))
        else:
            print(f"Resuming {workdir}: stage {stages_[start_stage].name if start_stage < len(stages_) else 'done'}, "
                  f"epoch {start_epoch}, batch {start_batch}")
        if start_stage >= len(stages_):
            # Training ended earlier (a kill while the outputs were written): its final state, not a fresh model.
            checkpointers[-1].restore()
            return
        offset = 0
        for index, stage in enumerate(stages_):
            if index < start_stage:
                offset += stage.epochs
                continue
            checkpointer, optimizer = checkpointers[index], self.optimizers[index]
            with self.strategy.scope():
                stage.enter()
            shrunk_state = _ShrunkOptimizerState()
            checkpointer.procedures = {**stage.procedures, **({"shrunk": shrunk_state} if stage.shrunk else {})}
            initial_epoch = initial_batch = 0
            if position is not None and index == start_stage:
                checkpointer.restore()
                initial_epoch, initial_batch = start_epoch, start_batch
            to_train = initial_epoch < stage.epochs and not stage.finished()
            # What the stage's steps update: the model, or in its place the shrunk model (written back).
            trainee, trainee_optimizer, twin = model, optimizer, None
            if stage.shrunk and to_train:
                twin, trainee_optimizer = self._shrunk_twin(index, shrunk_state)
                trainee = model if twin is None else twin.shrunk
            write_back = (lambda: None) if twin is None else twin.write_back
            hooks = stage.hooks + [
                _Call(write_back),  # the model holds the trained weights before it is evaluated and saved
                reports.Summaries(writer, model, trainee_optimizer, lambda t=trainee: self.evaluate(t), stage.name,
                                  offset, self.tau, self.scheme, history_file=os.path.join(workdir, "history.json")),
                CheckpointHook(checkpointer, index, config.get("checkpoint_every_steps", None), before_save=write_back),
            ]
            if to_train:
                print(f"Stage {index + 1}/{len(stages_)}: {stage.name}, {stage.epochs} epochs"
                      + ("" if twin is None else f", on the shrunk model ({_macs_line(model, trainee)})"))
                loop.train(trainee, trainee_optimizer, loss_fn, lambda e, i=index: self.train_data(e, i),
                           strategy=self.strategy, epochs=stage.epochs, hooks=hooks, initial_epoch=initial_epoch,
                           initial_batch=initial_batch, progress=config.get("progress", True),
                           summary_writer=writer, log_every_steps=config.get("log_every_steps", 100))
            # Accuracy before and after each transition (LRSD's dense / pruned columns), kept across resumes.
            transitions = reports.load_json(transitions_file)
            transitions[f"{stage.name}:end"] = self.evaluate(trainee)[0]  # the shrunk twin's outputs are the model's
            if stage.record is not None:
                transitions[f"{stage.name}:record"] = stage.record()
            with self.strategy.scope():
                stage.leave()
            transitions[f"{stage.name}:after_transition"] = self.evaluate()[0]
            files.write_text(transitions_file, json.dumps(transitions, indent=2))
            checkpointer.procedures = {}
            # The next stage starts from here (its own checkpointer: it may have its own optimizer).
            checkpointers[min(index + 1, len(stages_) - 1)].save(index + 1, 0, 0)
            offset += stage.epochs

"""The custom ``tf.distribute`` training loop the binaries share (TensorFlow only).

    strategy = distribute.make_strategy()
    with strategy.scope():  # the model and the optimizer must be created inside the scope
        model = models.get("resnet20", ...)
        optimizer = keras.optimizers.SGD(0.01, momentum=0.9)  # lr * rho = 1 < 2 (1 + momentum)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
    admm = ADMM("l1", mu=1e-3)  # train() attaches it inside the scope
    losses = loop.train(model, optimizer, loss_fn, dataset, strategy=strategy, epochs=30, hooks=[admm])

One step runs on every replica (``strategy.run``): the forward pass, the loss
``sum(per-example losses) / global batch + sum(model.losses) / replicas``, its gradients, and
``optimizer.apply``, which all-reduces the gradients and then applies each variable's ``constraint``
(so :mod:`~sparse_keras.sparsity.masking` masks hold). Summed over replicas this is the global objective
with every regularizer (group lasso, ADMM's W-step penalty) counted once: each replica computes them on
the same mirrored weights.

Between epochs the loop calls its hooks in cross-replica context, outside ``strategy.run``, where state
changed outside gradients (ADMM's F and Gamma, masks) can be read and assigned on all replicas at once.
An ADMM hook is attached by ``train()`` inside ``strategy.scope()``, so F and Gamma are mirrored
variables; attaching it yourself beforehand works too if you do it inside the scope. When a hook swaps
a regularizer or a constraint (ADMM's ``finalize``/``release`` in mu-path mode), the next epoch runs a
freshly traced step: a traced step keeps the ones it was traced with.
"""

import math
import time

import keras
import tensorflow as tf
from absl import logging

from sparse_keras.inspection import kernels


class Hook:
    """What :func:`train` calls on its hooks; every method is optional.

    A Keras callback is a hook as it is, so :class:`sparse_keras.sparsity.admm.ADMM`,
    ``keras.callbacks.History`` or ``EarlyStopping`` can be passed directly (the loop honours
    ``model.stop_training``); callbacks that work per batch or read ``self.params`` are not served.
    All methods run in cross-replica context; ``on_train_begin`` runs inside ``strategy.scope()``, so
    variables a hook creates there (ADMM's F and Gamma) are mirrored like the model's.
    """

    def set_model(self, model):
        pass

    def on_train_begin(self, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        """``logs`` holds ``"loss"``, the epoch's mean loss (penalties included), and ``"penalty"``, their
        share of it; hooks may add entries for the hooks after them."""

    def on_train_end(self, logs=None):
        pass


class FunctionHook(Hook):
    """Calls ``fn(epoch, logs)`` at the end of every epoch."""

    def __init__(self, fn):
        self.fn = fn

    def on_epoch_end(self, epoch, logs=None):
        self.fn(epoch, logs)


_HOOK_METHODS = ("set_model", "on_train_begin", "on_epoch_end", "on_train_end")


def as_hook(obj):
    """``obj`` if it has any :class:`Hook` method (Keras callbacks do), a plain function wrapped in
    :class:`FunctionHook`; anything else is a ``TypeError``."""
    if any(callable(getattr(obj, name, None)) for name in _HOOK_METHODS):
        return obj
    if callable(obj):
        return FunctionHook(obj)
    raise TypeError(f"A hook needs an on_epoch_end(epoch, logs) method or must be a function; got {obj!r}")


def _notify(hooks, method, *args):
    for hook in hooks:
        fn = getattr(hook, method, None)
        if fn is not None:
            fn(*args)


def is_time(step, every):
    """Whether periodic work due ``every`` steps falls on ``step`` (1-based); ``every=None`` means never."""
    return bool(every) and step % every == 0


def train(
    model,
    optimizer,
    loss_fn,
    dataset,
    *,
    strategy,
    epochs,
    steps_per_epoch=None,
    hooks=(),
    log_every_steps=None,
    initial_epoch=0,
    initial_batch=0,
    progress=False,
    summary_writer=None,
):
    """Trains ``model`` on ``dataset`` under ``strategy``; returns the mean loss of every epoch run.

    Args:
      model: a built Keras model whose variables were created inside ``strategy.scope()``.
      optimizer: a Keras 3 optimizer created inside ``strategy.scope()`` (it remembers the strategy it
        was created under and updates the variables through it).
      loss_fn: ``loss_fn(y_true, y_pred)`` returning one loss per example, e.g. a Keras loss built with
        ``reduction=None`` or ``keras.losses.sparse_categorical_crossentropy``.
      dataset: a ``tf.data.Dataset`` of global batches ``(x, y)`` or ``(x, y, sample_weight)``, or a
        function ``epoch -> Dataset`` giving each epoch its own deterministic pass (what makes a resumed run
        see the batches an uninterrupted one would); the strategy splits each batch among the replicas.
      strategy: the ``tf.distribute.Strategy`` (see :mod:`sparse_keras.training.distribute`).
      epochs: train until this many epochs are done (counting from 0, like ``model.fit``).
      steps_per_epoch: ``None`` for one pass over the epoch's dataset; otherwise this many batches per
        epoch from one iterator kept across epochs (so ``dataset`` should ``repeat()``).
      hooks: :class:`Hook` objects (Keras callbacks, an ADMM callback) or functions ``fn(epoch, logs)``,
        called in this order at the end of every epoch (and, where they define it, after every step:
        ``on_train_batch_end(step, {"loss", "epoch", "batch"})``).
      log_every_steps: log (and with ``summary_writer`` write) the step's loss every this many steps.
      initial_epoch, initial_batch: where a resumed run starts: epoch ``initial_epoch`` after skipping its
        first ``initial_batch`` batches (needs ``dataset`` to be a function of the epoch for an exact resume).
      progress: a progress bar with ETA per epoch on the console.
      summary_writer: a ``tf.summary`` writer for step losses and epoch logs (TensorBoard).

    Raises:
      FloatingPointError: a step's loss is not finite (the step and the loss are named).
    """
    if not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"epochs must be a non-negative integer, got epochs={epochs!r}")
    if steps_per_epoch is not None and (not isinstance(steps_per_epoch, int) or steps_per_epoch < 1):
        raise ValueError(f"steps_per_epoch must be None or a positive integer, got steps_per_epoch={steps_per_epoch!r}")
    if initial_batch and not callable(dataset):
        raise ValueError("initial_batch needs dataset to be a function epoch -> Dataset (a deterministic pass)")
    hooks = [as_hook(h) for h in hooks]
    for hook in hooks:
        # The optimizer is not the model's here, so a hook that depends on it (ADMM's lr * rho bound) is told.
        if hasattr(hook, "check_optimizer"):
            hook.check_optimizer(optimizer)
    _check_created_in_scope(model, optimizer, strategy)
    _warn_about_unsynchronized_batch_norm(model, strategy)

    with strategy.scope():
        if not optimizer.built:
            optimizer.build(model.trainable_variables)  # slots are mirrored like the weights
        _notify(hooks, "set_model", model)
        _notify(hooks, "on_train_begin", {})

    epoch_data = _EpochData(dataset, strategy, steps_per_epoch, initial_epoch, initial_batch)
    step_fn, traced_with = make_train_step(model, optimizer, loss_fn, strategy), _captured_state(model)
    model.stop_training = False
    epoch_losses = []
    step = int(keras.ops.convert_to_numpy(optimizer.iterations))  # global step: counts resumed runs too
    for epoch in range(initial_epoch, epochs):
        first_batch = initial_batch if epoch == initial_epoch else 0
        batches = epoch_data.batches(epoch)
        # The bar shows the epoch's running means (Keras' own Progbar would show the last step's loss at
        # the end of the epoch), so its last figures are the epoch's logged ones.
        bar = (keras.utils.Progbar(epoch_data.length(epoch), unit_name="step", stateful_metrics=("loss", "penalty"))
               if progress else None)
        if bar is not None:
            print(f"Epoch {epoch + 1}/{epochs}")
        started = time.perf_counter()
        mean_loss, mean_penalty, step = _run_epoch(
            step_fn, batches, epoch, step, log_every_steps, hooks, first_batch, bar, summary_writer
        )
        # Wall seconds of this epoch's steps (of the part run by this process, after a resume).
        logs = {"loss": mean_loss, "penalty": mean_penalty, "seconds": time.perf_counter() - started}
        _notify(hooks, "on_epoch_end", epoch, logs)
        epoch_losses.append(mean_loss)
        logging.info("epoch %d: %s", epoch, {k: v for k, v in logs.items() if isinstance(v, (int, float))})
        _write_scalars(summary_writer, {f"epoch/{k}": v for k, v in logs.items()}, step)
        if getattr(model, "stop_training", False):
            break
        if not _same_state(traced_with, _captured_state(model)):
            # A hook changed a regularizer or a constraint (ADMM's finalize/release): the traced step
            # captured the old ones, so trace a new step.
            step_fn, traced_with = make_train_step(model, optimizer, loss_fn, strategy), _captured_state(model)
    _notify(hooks, "on_train_end", {"loss": epoch_losses[-1]} if epoch_losses else {})
    return epoch_losses


class _EpochData:
    """The distributed batches of each epoch: a fixed dataset, one iterator across epochs, or a
    deterministic pass per epoch (``dataset(epoch)``), the first one skipping already-done batches."""

    def __init__(self, dataset, strategy, steps_per_epoch, initial_epoch, initial_batch):
        self.dataset, self.strategy, self.steps_per_epoch = dataset, strategy, steps_per_epoch
        self.initial_epoch, self.initial_batch = initial_epoch, initial_batch
        self.iterator = None
        if not callable(dataset):
            self.distributed = self._distribute(dataset)
            self.iterator = iter(self.distributed) if steps_per_epoch else None

    def _distribute(self, dataset):
        """The dataset split among the replicas; with one replica, the dataset itself.

        ``experimental_distribute_dataset`` reads through a ``MultiDeviceIterator`` even for one device, and
        its per-device pipelines run tf.data's autotuner, whose sleeping model thread each iterator's
        destructor waits for: 25-35 s between two epochs of the demo on 2 cores (TensorFlow 2.21), the
        machine idle meanwhile. One replica needs no splitting: its steps take the global batches as they are.
        """
        if self.strategy.num_replicas_in_sync == 1:
            return dataset
        return self.strategy.experimental_distribute_dataset(dataset)

    def length(self, epoch):
        if self.steps_per_epoch:
            return self.steps_per_epoch
        dataset = self.dataset(epoch) if callable(self.dataset) else self.dataset
        n = int(dataset.cardinality().numpy())
        return n if n >= 0 else None  # unknown or infinite: the bar counts without a target

    def batches(self, epoch):
        if callable(self.dataset):
            dataset = self.dataset(epoch)
            skip = self.initial_batch if epoch == self.initial_epoch else 0
            distributed = self._distribute(dataset.skip(skip) if skip else dataset)
            if self.steps_per_epoch is None:
                return iter(distributed)
            return _take(iter(distributed), self.steps_per_epoch - skip, epoch)
        if self.steps_per_epoch is None:
            return iter(self.distributed)
        return _take(self.iterator, self.steps_per_epoch, epoch)


def _take(iterator, count, epoch):
    for i in range(count):
        try:
            batch = next(iterator)
        except StopIteration:
            raise ValueError(
                f"The dataset ran out after {i} steps of epoch {epoch} with steps_per_epoch={count}; "
                "repeat() it or pass steps_per_epoch=None"
            ) from None
        yield batch


def _write_scalars(writer, scalars, step):
    if writer is None:
        return
    with writer.as_default():
        for name, value in scalars.items():
            if isinstance(value, (int, float)):
                tf.summary.scalar(name, value, step=step)
    writer.flush()


def _run_epoch(step_fn, batches, epoch, step, log_every_steps, hooks=(), first_batch=0, bar=None, writer=None):
    """Runs the steps of one epoch after global step ``step``; returns the mean loss, the mean penalty
    (the part of the loss that ``model.losses`` contribute) and the last step."""
    total, total_penalty, count = 0.0, 0.0, 0
    batch_hooks = [h for h in hooks if callable(getattr(h, "on_train_batch_end", None))]
    if bar is not None and first_batch:
        bar.update(first_batch)
    for batch in batches:
        step += 1
        # Reading the loss each step costs one host sync and stops the run at the first bad step.
        loss, penalty = (float(v) for v in step_fn(batch).numpy())
        if not math.isfinite(loss):
            raise FloatingPointError(f"Loss is {loss} at step {step} (epoch {epoch}); stopping the run")
        total, total_penalty, count = total + loss, total_penalty + penalty, count + 1
        if bar is not None:
            # The data loss and the penalty apart: a growing penalty (ADMM's pull towards F, a group lasso)
            # must not read as a diverging model.
            mean, mean_penalty = total / count, total_penalty / count
            values = [("loss", mean - mean_penalty), ("penalty", mean_penalty)] if total_penalty else [("loss", mean)]
            bar.update(first_batch + count, values=values)
        if is_time(step, log_every_steps):
            logging.info("step %d: loss %.6g", step, loss)
            _write_scalars(writer, {"step/loss": loss}, step)
        for hook in batch_hooks:
            hook.on_train_batch_end(step, {"loss": loss, "epoch": epoch, "batch": first_batch + count})
    if count == 0:
        raise ValueError(f"Epoch {epoch} had no batches: the dataset is empty")
    return total / count, total_penalty / count, step


def make_train_step(model, optimizer, loss_fn, strategy):
    """The ``tf.function`` running one training step on a distributed batch; returns the global loss
    and, of it, the penalty of ``model.losses`` (a vector of two)."""

    def replica_step(x, y, sample_weight=None):
        with tf.GradientTape() as tape:
            per_example = tf.cast(loss_fn(y, model(x, training=True)), tf.float32)
            if per_example.shape.rank == 0:
                raise ValueError(
                    f"loss_fn must return one loss per example (reduction=None); {loss_fn!r} returned a scalar"
                )
            # The global batch is counted, not assumed: the last batch of an epoch can be smaller and
            # split unevenly among replicas.
            local = tf.cast(tf.shape(per_example)[0], tf.float32)
            global_batch = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, local)
            loss = tf.nn.compute_average_loss(
                per_example, sample_weight=sample_weight, global_batch_size=tf.cast(global_batch, tf.int32)
            )
            penalties = model.losses
            penalty = tf.zeros((), tf.float32)
            if penalties:
                # Every replica computes the same penalty on the same weights: count it once in total.
                penalty = tf.nn.scale_regularization_loss(tf.add_n([tf.cast(term, tf.float32) for term in penalties]))
                loss += penalty
            # Loss scaling for float16 mixed precision (a LossScaleOptimizer unscales in apply; others: identity).
            scaled = optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled, model.trainable_variables)
        optimizer.apply(gradients, model.trainable_variables)
        return tf.stack([loss, penalty])

    @tf.function(reduce_retracing=True)
    def train_step(batch):
        per_replica = strategy.run(replica_step, args=tuple(batch))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    return train_step


def _captured_state(model):
    """What a traced step captures from the model besides variable values: regularizers and constraints."""
    return [(v.regularizer, v.constraint) for v in model.trainable_variables]


def _same_state(a, b):
    return len(a) == len(b) and all(x is y for pair_a, pair_b in zip(a, b) for x, y in zip(pair_a, pair_b))


def _check_created_in_scope(model, optimizer, strategy):
    if not model.built:
        raise ValueError(
            f"Model {model.name!r} is not built; give it an Input or call it on a batch inside strategy.scope()"
        )
    for owner, variable in [("model", v) for v in model.variables] + [("optimizer", optimizer.iterations)]:
        if not strategy.extended.variable_created_in_scope(getattr(variable, "value", variable)):
            raise ValueError(
                f"The {owner}'s variable {variable.path!r} was not created under the scope of the "
                f"{type(strategy).__name__} given to train(); create the model and the optimizer inside "
                "`with strategy.scope():`"
            )


def _warn_about_unsynchronized_batch_norm(model, strategy):
    if strategy.num_replicas_in_sync == 1:
        return
    names = [
        layer.name
        for layer in kernels.iter_layers(model)
        if isinstance(layer, keras.layers.BatchNormalization) and not layer.synchronized
    ]
    if names:
        # Keras 3 creates moving statistics with aggregation "none": each replica updates its own copy
        # from its own sub-batch, and evaluation and saving read replica 0's.
        logging.warning(
            "BatchNormalization layers %s are not synchronized: across %d replicas each keeps its own moving "
            "statistics. Build them with synchronized=True for statistics over the global batch.",
            names,
            strategy.num_replicas_in_sync,
        )

"""What every training binary shares: workdir checks, flags, checkpoint hook, evaluation, export."""

import os


def prepare_workdir(workdir):
    """Creates ``workdir`` and proves it writable before training starts."""
    try:
        os.makedirs(workdir, exist_ok=True)
        probe = os.path.join(workdir, ".write-test")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as error:
        raise ValueError(f"--workdir={workdir!r} is not a writable directory: {error}") from None
    return workdir


def main(run, config_help):
    """Entry point of a binary: defines ``--config`` (an ml_collections config file, overridable with
    ``--config.key=value``) and ``--workdir``, parses them, and calls ``run(config, workdir)``.

    Flags are defined here, when a binary is run, not when its module is imported, so that tests and
    other binaries can import several binaries into one process.
    """
    from absl import app, flags
    from ml_collections import config_flags

    config_flag = config_flags.DEFINE_config_file("config", None, config_help)
    workdir_flag = flags.DEFINE_string("workdir", None, "Directory for outputs, checkpoints and logs.")
    flags.mark_flags_as_required(["config", "workdir"])

    def _main(argv):
        if len(argv) > 1:
            raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
        run(config_flag.value, workdir_flag.value)

    app.run(_main)


class CheckpointHook:
    """Hook: a checkpoint every N steps and at each epoch end, at the run's position."""

    def __init__(self, checkpointer, stage_index, every_steps):
        self.checkpointer, self.stage_index, self.every = checkpointer, stage_index, every_steps

    def on_train_batch_end(self, step, logs):
        from sparse_keras.training import loop

        if loop.is_time(step, self.every):
            self.checkpointer.save(self.stage_index, logs["epoch"], logs["batch"])

    def on_epoch_end(self, epoch, logs=None):
        self.checkpointer.save(self.stage_index, epoch + 1, 0)


def evaluate(model, dataset):
    """``(accuracy, mean loss)`` of ``model`` in inference mode over ``dataset``."""
    import keras
    import numpy as np

    correct = total = 0
    loss_sum = 0.0
    for x, y in dataset:
        logits = keras.ops.convert_to_numpy(keras.ops.cast(model(x, training=False), "float32"))
        labels = np.asarray(y)
        correct += int((logits.argmax(-1) == labels).sum())
        loss_sum += float(keras.ops.sum(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)))
        total += len(labels)
    return correct / max(total, 1), loss_sum / max(total, 1)


def export(model, workdir):
    """``model.keras`` and ``saved_model/`` in ``workdir``, each appearing whole or not at all."""
    import shutil
    import tempfile

    from sparse_keras import io

    with io.atomic_path(os.path.join(workdir, "model.keras")) as tmp:
        model.save(tmp)
    final = os.path.join(workdir, "saved_model")
    staging = tempfile.mkdtemp(prefix=".tmp-saved_model-", dir=workdir)
    try:
        model.export(staging, format="tf_saved_model", verbose=False)
        if os.path.exists(final):
            shutil.rmtree(final)
        os.replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final

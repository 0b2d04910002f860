"""Checkpoints a killed run resumes from exactly (TensorFlow only).

One checkpoint holds everything a training run's future depends on:

* the model's variables (weights, BatchNorm statistics, dropout seed states) and the optimizer's
  (iterations, momenta), by ``tf.train.CheckpointManager``, whose index file is replaced atomically
  after the data files are complete, so a kill at any moment leaves the previous checkpoint current;
* the position: stage of the run, epoch, batches done in that epoch (with a data pipeline that is a
  function of the epoch, that is enough to replay the exact batches that follow);
* state changed outside gradients: sparsity masks (:mod:`~sparse_keras.sparsity.masking`) and the state of
  procedures such as ADMM (anything with ``get_state() -> (arrays, meta)`` / ``set_state(arrays, meta)``),
  in a ``state-<n>.npz`` sidecar written (atomically) before checkpoint ``n`` itself, so the checkpoint the
  index names always has its sidecar.

A checkpoint that fails to read (a truncated ``.index``, ``.data`` or ``state-<n>.npz``: a full disk, a
copy cut short) is reported by file name and the newest intact one before it is used instead; when none is
intact, :class:`CheckpointError` lists why each failed.

Procedure state held in :class:`~sparse_keras.utils.state.TrainingState` sublayers is not part of the
model's variables here: the procedure saves it itself, attached or not.
"""

import glob
import json
import os
import re

import keras
import numpy as np
import tensorflow as tf

from sparse_keras.utils import files
from sparse_keras.sparsity import masking
from sparse_keras.utils import state as state_lib


def _model_variables(model):
    """``{unique key: tf variable}`` for the model's own state, procedure state left out."""
    out = {}
    for variable in model.variables:
        if state_lib.is_training_state(variable):
            continue
        key = variable.path
        while key in out:  # paths are unique in well-formed models; never let a clash overwrite silently
            key += "_"
        out[key] = getattr(variable, "value", variable)
    return out


def _number(checkpoint_path):
    return int(re.search(r"-(\d+)$", checkpoint_path).group(1))


class CheckpointError(ValueError):
    """No checkpoint of a directory can be read whole; the message names each file and its error."""


def _first_line(error):
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:200]


class Checkpointer:
    """Saves and restores a run: model, optimizer, position, masks and procedure states.

    Args:
      directory: where checkpoints go (created).
      model, optimizer: built (the optimizer is built here if it is not), inside the strategy's scope
        under ``tf.distribute``.
      procedures: ``{name: object with get_state/set_state}`` saved with every checkpoint.
      max_to_keep: checkpoints kept on disk.
    """

    def __init__(self, directory, model, optimizer, procedures=None, max_to_keep=3):
        self.directory = directory
        os.makedirs(directory, exist_ok=True)
        self.model, self.optimizer = model, optimizer
        self.procedures = dict(procedures or {})
        if not optimizer.built:
            optimizer.build(model.trainable_variables)
        self._position = tf.Variable([0, 0, 0], dtype=tf.int64, trainable=False, name="position")
        self._intact = None  # the checkpoint to resume from, once intact() has looked
        self._checkpoint = tf.train.Checkpoint(
            model=_model_variables(model),
            optimizer={str(i): getattr(v, "value", v) for i, v in enumerate(optimizer.variables)},
            position=self._position,
        )
        self._manager = tf.train.CheckpointManager(self._checkpoint, directory, max_to_keep=max_to_keep)

    @property
    def latest(self):
        return self._manager.latest_checkpoint

    def saved_position(self):
        """``(stage, epoch, batch)`` of the latest checkpoint without restoring it; ``None`` if there is none.

        A run reads it first to set up the stage it resumes in (attach procedures), then :meth:`restore`.
        """
        latest = self.intact()
        if latest is None:
            return None
        return tuple(int(x) for x in tf.train.load_variable(latest, "position/.ATTRIBUTES/VARIABLE_VALUE"))

    def intact(self):
        """The newest checkpoint that reads whole (``None`` if there is none); damaged newer ones are reported.

        Raises :class:`CheckpointError` when checkpoints exist and none of them reads whole.
        """
        if self._intact is not None:
            return self._intact
        candidates = list(reversed(self._manager.checkpoints))
        damaged = []
        for path in candidates:
            why = self._damage(path)
            if why is None:
                for reason in damaged:
                    print(f"WARNING: checkpoint file {reason}; resuming from {path} instead")
                self._intact = path
                return path
            damaged.append(why)
        if damaged:
            raise CheckpointError(
                f"No checkpoint in {self.directory} can be read: " + "; ".join(damaged)
                + ". Delete that directory (or rerun with --overwrite) to start the run again."
            )
        return None

    def _damage(self, path):
        """Why checkpoint ``path`` cannot be restored, naming the file; ``None`` when it reads whole."""
        try:
            reader = tf.train.load_checkpoint(path)
        except Exception as error:  # noqa: BLE001 (tf raises DataLossError, NotFoundError, ...: all mean damaged)
            return f"{path}.index is unreadable ({_first_line(error)})"
        try:
            for name in reader.get_variable_to_shape_map():
                reader.get_tensor(name)
        except Exception as error:  # noqa: BLE001
            data = ", ".join(sorted(glob.glob(path + ".data-*"))) or path + ".data-*"
            return f"{data} is unreadable ({_first_line(error)})"
        sidecar = self._sidecar(_number(path))
        try:
            with np.load(sidecar, allow_pickle=False) as data:
                for key in data.files:
                    data[key]
        except Exception as error:  # noqa: BLE001 (BadZipFile, EOFError, OSError, ValueError)
            return f"{sidecar} is unreadable ({type(error).__name__}: {_first_line(error)})"
        return None

    def save(self, stage, epoch, batch):
        """Writes a checkpoint at ``(stage, epoch, batches done in epoch)``; returns its path."""
        latest = self._manager.latest_checkpoint
        number = _number(latest) + 1 if latest else 1
        arrays, meta = {}, {"procedures": {}}
        for path, mask in masking.current_masks(self.model).items():
            arrays[f"mask:{path}"] = np.asarray(mask)
        for name, procedure in self.procedures.items():
            if getattr(procedure, "attached", True):
                p_arrays, p_meta = procedure.get_state()
                arrays.update({f"{name}:{k}": v for k, v in p_arrays.items()})
                meta["procedures"][name] = p_meta
        sidecar = self._sidecar(number)
        with files.atomic_path(sidecar) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, __meta__=np.array(json.dumps(meta)), **arrays)
        self._position.assign([stage, epoch, batch])
        path = self._manager.save(checkpoint_number=number)
        self._intact = path
        self._remove_stale_sidecars()
        return path

    def restore(self):
        """Restores the latest checkpoint; returns ``(stage, epoch, batch)``, or ``None`` when there is none.

        Procedures must be attached to the model (``attach``) before; masks and their states come back.
        """
        latest = self.intact()
        if latest is None:
            return None
        self._checkpoint.restore(latest).assert_existing_objects_matched()
        number = _number(latest)
        with np.load(self._sidecar(number), allow_pickle=False) as data:
            meta = json.loads(str(data["__meta__"]))
            arrays = {k: data[k] for k in data.files if k != "__meta__"}
        masking.remove_masks(self.model)
        masks = {k.split(":", 1)[1]: v for k, v in arrays.items() if k.startswith("mask:")}
        if masks:
            masking.install_masks(self.model, masks)
        for name, p_meta in meta["procedures"].items():
            if name not in self.procedures:
                raise ValueError(f"Checkpoint {latest} holds state of procedure {name!r}, which this run lacks")
            prefix = f"{name}:"
            self.procedures[name].set_state(
                {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}, p_meta
            )
        return tuple(int(x) for x in keras.ops.convert_to_numpy(self._position))

    def _sidecar(self, number):
        return os.path.join(self.directory, f"state-{number}.npz")

    def _remove_stale_sidecars(self):
        kept = {_number(p) for p in self._manager.checkpoints}
        for name in os.listdir(self.directory):
            match = re.fullmatch(r"state-(\d+)\.npz", name)
            if match and int(match.group(1)) not in kept:
                os.remove(os.path.join(self.directory, name))

"""Masked fine-tuning: keeping pruned weights exactly zero while the rest trains.

One mechanism for the whole library (ADMM's Algorithm 1 line 11, LRSD's fine-tuning): a mask is a
``keras.constraints.Constraint`` on the kernel variable, which every Keras optimizer applies right after
its update (``w <- w * mask``). So ``model.fit`` and custom loops that call ``optimizer.apply`` keep the
zeros on every backend, with momentum or not. The constraint is set on the variable only (not on the
layer's ``kernel_constraint`` argument): masks are training state, not architecture, and a saved model's
pruned weights are already zero.

Traced train steps capture the mask, so installing or removing masks makes the model's train step
retrace (:func:`sparse_keras.utils.tracing.retrace`), also from a callback inside ``fit``.
"""

import keras
import numpy as np
from keras import ops

from sparse_keras.utils import tracing


class MaskConstraint(keras.constraints.Constraint):
    """``w -> w * mask``, with ``mask`` a fixed 0/1 array of the weight's shape (or broadcastable to it)."""

    def __init__(self, mask, wrapped=None):
        self.mask = np.asarray(mask, dtype="float32")
        self.wrapped = wrapped  # a constraint that was on the variable before the mask

    def __call__(self, w):
        if self.wrapped is not None:
            w = self.wrapped(w)
        return w * ops.cast(self.mask, w.dtype)

    def get_config(self):
        return {"mask": self.mask.tolist()}


def _variables_by_path(model):
    """Every trainable variable of ``model`` by path: kernels, and biases pruned with their kernels."""
    return {v.path: v for v in model.trainable_variables}


def install_masks(model, masks):
    """Applies ``{variable path: mask}`` to ``model`` now and keeps it applied after every optimizer step.

    Unknown paths or masks of the wrong shape raise ``ValueError`` before anything is changed.
    """
    variables = _variables_by_path(model)
    unknown = sorted(set(masks) - set(variables))
    if unknown:
        raise ValueError(f"Masks name kernels that model {model.name!r} does not have: {unknown}")
    for path, mask in masks.items():
        shape = tuple(int(d) for d in variables[path].shape)
        if np.shape(mask) != shape:
            raise ValueError(f"Mask for {path!r} has shape {np.shape(mask)}, the kernel has shape {shape}")
    for path, mask in masks.items():
        variable = variables[path]
        previous = variable.constraint
        if isinstance(previous, MaskConstraint):
            previous = previous.wrapped
        variable.constraint = MaskConstraint(mask, wrapped=previous)
        variable.assign(variable.constraint(variable))
    tracing.retrace(model)
    return model


def remove_masks(model):
    """Lifts every mask installed by :func:`install_masks` (weights keep their current values)."""
    for variable in _variables_by_path(model).values():
        constraint = variable.constraint
        if isinstance(constraint, MaskConstraint):
            variable.constraint = constraint.wrapped
    tracing.retrace(model)
    return model


def current_masks(model):
    """``{variable path: mask}`` of the masks installed on ``model``."""
    return {
        path: variable.constraint.mask
        for path, variable in _variables_by_path(model).items()
        if isinstance(variable.constraint, MaskConstraint)
    }


"""Training-procedure state that compiled steps must read live, carried by a layer but never saved with it.

ADMM's F and Gamma change between W-steps, outside gradients. A traced train step sees a variable's
current value only if the variable is part of the model's state: on JAX, ``fit`` passes
``model.non_trainable_variables`` into the jitted step at each epoch and writes them back at its end,
while anything the model does not track is frozen into the step as a constant (a change would force a
retrace, i.e. a recompile). So the variables live in a :class:`TrainingState` sublayer attached to the
layer whose kernel they belong to. That works for functional, Sequential and subclassed models alike,
and TensorFlow reads them live too.

A ``TrainingState`` saves and loads nothing: a ``.keras`` file written while it is attached holds just the
model (the procedure checkpoints its own state, e.g. :meth:`sparse_keras.admm.ADMM.save`), and loads into
a fresh model. Attaching to a built layer follows Keras' own ``enable_lora``: unlock the layer's tracker,
set the attribute, lock again.
"""

import weakref

import keras
import numpy as np

# Variables created by TrainingState.add_state, by id: checkpointers leave them to their procedures.
_STATE_VARIABLES = weakref.WeakValueDictionary()


def is_training_state(variable):
    """Whether ``variable`` belongs to a :class:`TrainingState` (procedure state, not the model's own)."""
    return _STATE_VARIABLES.get(id(variable)) is variable


class TrainingState(keras.layers.Layer):
    """A holder of non-trainable variables that is part of a model's state but not of its saved weights."""

    def __init__(self, **kwargs):
        super().__init__(trainable=False, **kwargs)

    def add_state(self, name, value):
        """A new non-trainable float32 variable initialised to ``value``."""
        value = np.asarray(value, dtype="float32")
        variable = self.add_weight(
            shape=value.shape, initializer=keras.initializers.Constant(0.0), trainable=False, name=name
        )
        variable.assign(value)
        _STATE_VARIABLES[id(variable)] = variable
        return variable

    def save_own_variables(self, store):
        del store  # procedure state is checkpointed by the procedure, not with the model

    def load_own_variables(self, store):
        del store


def attach(layer, attr, state):
    """Makes ``state`` a sublayer of ``layer`` under ``attr``, so the model's variables include it."""
    if getattr(layer, attr, None) is state:
        return state
    locked = layer._tracker.locked
    layer._tracker.unlock()
    try:
        setattr(layer, attr, state)
    finally:
        if locked:
            layer._tracker.lock()
    return state


def detach(layer, attr):
    """Removes the sublayer set by :func:`attach`; the state's variables keep their values."""
    state = getattr(layer, attr, None)
    if state is None:
        return None
    layer._tracker.untrack(state)
    object.__delattr__(layer, attr)
    return state

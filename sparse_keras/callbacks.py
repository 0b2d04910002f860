"""Keras callbacks for state that gradients do not update.

Every callback here assigns model variables only where the JAX trainer has synced its compiled state back
into them (``on_test_begin`` and ``on_train_end`` inside and after ``fit``), so the assignment is seen by the
next compiled step on every backend.
"""

import keras

from sparse_keras.layers import csc


class RefreshCSCStepSize(keras.callbacks.Callback):
    """Re-runs the power iteration of every CSC layer before each evaluation and at the end of ``fit``.

    During training a :class:`~sparse_keras.layers.CSCConv2D` refreshes its step size itself, in every
    training-mode forward pass, on the dictionary of the previous optimizer step; nothing refreshes it after
    the last step. This callback does, so that validation and the trained model use ``t = 0.9 / L`` of
    the final dictionary (the paper's "fixed during testing").
    """

    def on_test_begin(self, logs=None):
        csc.update_step_sizes(self.model)

    def on_train_end(self, logs=None):
        csc.update_step_sizes(self.model)

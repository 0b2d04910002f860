"""Helpers for tests of code that must behave alike on every Keras backend."""

import keras
import numpy as np


def to_numpy(x):
    """A backend tensor or variable as a numpy array."""
    return keras.ops.convert_to_numpy(x)


def gradient(fn, x):
    """``d sum(fn(x)) / dx`` at ``x`` by the running backend's own autodiff, as a numpy array.

    TensorFlow and JAX are imported here, on first use, so that importing this module needs neither.
    """
    x = np.asarray(x, dtype="float32")
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = keras.ops.sum(fn(x))
        return tape.gradient(y, x).numpy()
    if backend == "jax":
        import jax

        return np.asarray(jax.grad(lambda v: keras.ops.sum(fn(v)))(jax.numpy.asarray(x)))
    raise ValueError(f"gradient() supports the tensorflow and jax backends, not {backend!r}")

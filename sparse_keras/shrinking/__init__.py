"""Turning learned structured sparsity into a physically smaller dense Keras model.

``shrink(model, tau)`` removes dead channels (following Add / Concatenate / Flatten through the graph),
drops residual branches whose every kernel is zero, and crops kernels to their learned size, keeping the
outputs equal. New layer types plug in with :func:`register` (see :mod:`~sparse_keras.shrinking.registry`).
"""
from sparse_keras.shrinking.registry import Handler
from sparse_keras.shrinking.registry import KeepHandler
from sparse_keras.shrinking.registry import handler_for
from sparse_keras.shrinking.registry import register
from sparse_keras.shrinking.shrink import MIXED_SIZES
from sparse_keras.shrinking.shrink import effective_weights
from sparse_keras.shrinking.shrink import shrink

__all__ = ["Handler", "KeepHandler", "MIXED_SIZES", "effective_weights", "handler_for", "register", "shrink"]

"""Keras callbacks for state that gradients do not update.

Every callback here assigns model variables only where the JAX trainer has synced its compiled state back
into them (``on_test_begin`` and ``on_train_end`` inside and after ``fit``), so the assignment is seen by the
next compiled step on every backend.

* :class:`RefreshCSCStepSize` — the FISTA step size of every CSC layer, before evaluation and after ``fit``.
* :class:`ADMM` — ADMM sparsity training (Kiaee et al. 2016); also :class:`sparse_keras.admm.ADMM`.
"""
from sparse_keras.layers.csc import RefreshCSCStepSize
from sparse_keras.sparsity.admm import ADMM

__all__ = [
    "ADMM",
    "RefreshCSCStepSize",
]

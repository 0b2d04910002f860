"""ADMM sparsity training (seed 002), the public face: ``from sparse_keras import admm``.

* :class:`ADMM` — the callback (W-step penalty, F-step, dual update, mu path, finalize, state).
* :class:`MuPath` — the increasing mu grid with the paper's epoch schedule (delta, nu, xi).
* :func:`soft_threshold_groups` / :func:`hard_threshold_groups` — the block proximal operators (eq. 9/10).
"""
from sparse_keras.ops.proximal import block_norms
from sparse_keras.ops.proximal import hard_threshold_groups
from sparse_keras.ops.proximal import soft_threshold_groups
from sparse_keras.sparsity.admm import ADMM
from sparse_keras.sparsity.admm import block_axes
from sparse_keras.sparsity.masking import install_masks
from sparse_keras.sparsity.masking import remove_masks
from sparse_keras.sparsity.schedules import MuPath

__all__ = [
    "ADMM",
    "MuPath",
    "block_axes",
    "block_norms",
    "hard_threshold_groups",
    "install_masks",
    "remove_masks",
    "soft_threshold_groups",
]

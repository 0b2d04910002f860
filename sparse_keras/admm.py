"""ADMM sparsity training (Kiaee et al. 2016), the public face: ``from sparse_keras import admm``.

* :class:`ADMM` — the callback (W-step penalty, F-step, dual update, mu path, finalize, state);
  :class:`ADMMAlgorithm` — the same state and steps without ``keras.callbacks``, for custom loops.
* :class:`MuPath` — the increasing mu grid with the paper's epoch schedule (delta, nu, xi).
* :func:`check_stability` / :func:`check_optimizer` — the ``lr * rho`` bound of SGD's W-step.
* :func:`soft_threshold_groups` / :func:`hard_threshold_groups` — the block proximal operators (eq. 9/10).
"""
from sparse_keras.ops.proximal import block_norms
from sparse_keras.ops.proximal import hard_threshold_groups
from sparse_keras.ops.proximal import soft_threshold_groups
from sparse_keras.sparsity.admm import ADMM
from sparse_keras.sparsity.admm_algorithm import ADMMAlgorithm
from sparse_keras.sparsity.admm_kernels import block_axes
from sparse_keras.sparsity.admm_kernels import check_optimizer
from sparse_keras.sparsity.admm_kernels import check_stability
from sparse_keras.sparsity.admm_kernels import stability_bound
from sparse_keras.sparsity.masking import install_masks
from sparse_keras.sparsity.masking import remove_masks
from sparse_keras.sparsity.schedules import MuPath

__all__ = [
    "ADMM",
    "ADMMAlgorithm",
    "MuPath",
    "block_axes",
    "block_norms",
    "check_optimizer",
    "check_stability",
    "hard_threshold_groups",
    "install_masks",
    "remove_masks",
    "soft_threshold_groups",
    "stability_bound",
]

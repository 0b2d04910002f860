"""Turning learned, approximately-zero structure into exact zeros.

* :func:`threshold` — zero every group of a kernel whose norm is at most ``tau`` (eq. 15 and 23 of the
  structured-sparsity paper); returns the keep masks for masked fine-tuning.
* :func:`to_target` / :func:`threshold_groups` / :func:`remove` — coupled channel groups
  (:mod:`sparse_keras.structure`): rank by importance and prune to a channel or multiply-add target.
* :func:`prune_lrsd` / :func:`energy_ratio_mask` — LRSD's energy-ratio pruning of ``S`` (Guo et al. 2019).
"""
from sparse_keras.sparsity.thresholding import threshold
from sparse_keras.sparsity.targets import CRITERIA
from sparse_keras.sparsity.targets import Selection
from sparse_keras.sparsity.targets import remove
from sparse_keras.sparsity.targets import threshold_groups
from sparse_keras.sparsity.targets import to_target
from sparse_keras.sparsity.lrsd import prune_lrsd
from sparse_keras.sparsity.energy import energy_ratio_mask

__all__ = [
    "CRITERIA",
    "Selection",
    "energy_ratio_mask",
    "prune_lrsd",
    "remove",
    "threshold",
    "threshold_groups",
    "to_target",
]

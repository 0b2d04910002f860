"""Coupled channel groups: every weight slice that goes with one channel, across the whole model.

* :func:`coupled_groups` — the groups of a functional model (Torch-Pruning's dependency graph, Fang et al. 2023).
* :func:`zero_groups` — zero every slice of chosen groups; :func:`zero_coupled_groups` — a random fraction.
"""
from sparse_keras.sparsity.coupled import UNSUPPORTED
from sparse_keras.sparsity.coupled import CoupledGroup
from sparse_keras.sparsity.coupled import CoupledGroups
from sparse_keras.sparsity.coupled import Slice
from sparse_keras.sparsity.coupled import coupled_groups
from sparse_keras.sparsity.coupled import zero_coupled_groups
from sparse_keras.sparsity.coupled import zero_groups

__all__ = [
    "CoupledGroup",
    "CoupledGroups",
    "Slice",
    "UNSUPPORTED",
    "coupled_groups",
    "zero_coupled_groups",
    "zero_groups",
]

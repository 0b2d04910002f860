"""Rebuilding an existing model with LRSD layers in place of its convolutions, and back (Guo et al. 2019, section III-A).
"""
from sparse_keras.sparsity.convert import from_lrsd
from sparse_keras.sparsity.convert import paper_sparse_only
from sparse_keras.sparsity.convert import to_lrsd

__all__ = [
    "from_lrsd",
    "paper_sparse_only",
    "to_lrsd",
]

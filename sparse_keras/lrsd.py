"""LRSD after training (Guo et al. 2019, section III-D and IV): energy pruning of every ``S``, masked
fine-tuning, the paper's ``N_c / N_o`` accounting, its tables and Fig. 5.

The layers are :class:`sparse_keras.layers.LRSDConv2D` / :class:`~sparse_keras.layers.LRSDDense`; rebuilding
a plain model with them is :mod:`sparse_keras.convert`.
"""
from sparse_keras.sparsity.lrsd import Compression
from sparse_keras.sparsity.lrsd import CompressionResult
from sparse_keras.sparsity.lrsd import LayerCompression
from sparse_keras.sparsity.lrsd import compression
from sparse_keras.sparsity.lrsd import lrsd_layers_of
from sparse_keras.sparsity.lrsd import prune_and_finetune
from sparse_keras.sparsity.lrsd import prune_lrsd
from sparse_keras.sparsity.lrsd import results_table
from sparse_keras.reports.plots import plot_layer_ratios

__all__ = [
    "Compression",
    "CompressionResult",
    "LayerCompression",
    "compression",
    "lrsd_layers_of",
    "plot_layer_ratios",
    "prune_and_finetune",
    "prune_lrsd",
    "results_table",
]

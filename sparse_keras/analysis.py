"""The learned architecture of a sparsified model (the structured-sparsity paper, eq. 10, 11, 15, 20, 23).

* :func:`report` — per kernel: learned width ``d_i``, input width ``d_(i-1)``, kernel sizes, multiply-adds
  and parameters before and after; an :class:`ArchitectureReport`, writable as markdown, CSV and JSON.
* :func:`kernel_sizes` / :func:`layer_width` — the same for one kernel.
* :func:`plot_architecture` — widths and kernel sizes per layer as a PNG.
"""
from sparse_keras.inspection.architecture import ArchitectureReport
from sparse_keras.inspection.architecture import LayerReport
from sparse_keras.inspection.architecture import count_params
from sparse_keras.inspection.architecture import kernel_sizes
from sparse_keras.inspection.architecture import layer_width
from sparse_keras.inspection.architecture import report
from sparse_keras.reports.plots import plot_architecture

__all__ = [
    "ArchitectureReport",
    "LayerReport",
    "count_params",
    "kernel_sizes",
    "layer_width",
    "plot_architecture",
    "report",
]

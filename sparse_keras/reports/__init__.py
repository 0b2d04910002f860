"""Reading results: architecture tables, the efficient frontier, latency, and pictures.

* :mod:`sparse_keras.reports.frontier` — one point per trained network; tables and the learned-vs-uniform
  comparison of the structured-sparsity paper's sweep.
* :mod:`sparse_keras.reports.plots` — architectures, training curves, LRSD ratios, the frontier (PNG).
* :mod:`sparse_keras.reports.csc_pictures` — what CSC layers' sparse codes explain (Dai et al. 2022).
* :mod:`sparse_keras.reports.latency` — measured latency and the original-vs-shrunk comparison.
* :mod:`sparse_keras.reports.figures` — the one figure saver (matplotlib imported on first use).

Tables go through :mod:`sparse_keras.utils.tables`; the learned architecture itself is computed by
:mod:`sparse_keras.inspection.architecture` (exposed as :mod:`sparse_keras.analysis`).
"""
from sparse_keras.reports import frontier
from sparse_keras.reports import latency
from sparse_keras.reports import plots

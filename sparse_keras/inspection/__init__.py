"""Reading a Keras model: which weights are sparsifiable kernels, how channels flow through its graph,
and the architecture its sparsity has learned.

* :mod:`sparse_keras.inspection.kernels` — kernel slots (built-in layers by registry, custom layers through
  the one-method :class:`~sparse_keras.inspection.kernels.Sparsifiable` interface).
* :mod:`sparse_keras.inspection.graph` — which input channels of each layer are still fed.
* :mod:`sparse_keras.inspection.architecture` — learned widths, kernel sizes, multiply-adds, parameters.
"""

"""Learning and enforcing sparsity on whole models.

* :mod:`~sparse_keras.sparsity.attach` — attaching group-lasso regularizers (``sk.regularize``);
  :mod:`~sparse_keras.sparsity.complexity` — weighting them by cost (Omega_3).
* :mod:`~sparse_keras.sparsity.admm` (the callback) and :mod:`~sparse_keras.sparsity.admm_algorithm`
  (the steps, no Keras callback), :mod:`~sparse_keras.sparsity.schedules` (the mu path).
* :mod:`~sparse_keras.sparsity.thresholding`, :mod:`~sparse_keras.sparsity.targets` and
  :mod:`~sparse_keras.sparsity.masking` — exact zeros, pruning to a target, masked fine-tuning;
  :mod:`~sparse_keras.sparsity.shrunk_twin` — that fine-tuning run on the shrunk model, written back.
* :mod:`~sparse_keras.sparsity.coupled` — coupled channel groups across layers.
* :mod:`~sparse_keras.sparsity.lrsd`, :mod:`~sparse_keras.sparsity.energy`, :mod:`~sparse_keras.sparsity.convert`
  — LRSD (Guo et al. 2019): energy pruning, accounting, rebuilding a model with LRSD layers.
"""

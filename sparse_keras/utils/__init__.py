"""Helpers that know nothing about sparsity, shared by every part of the library.

* :mod:`sparse_keras.utils.checks` — validation of constructor arguments (one message style everywhere).
* :mod:`sparse_keras.utils.files` — atomic file writing.
* :mod:`sparse_keras.utils.tables` — the one markdown / CSV table writer.
* :mod:`sparse_keras.utils.timing` — wall-clock latency of a Keras model.
* :mod:`sparse_keras.utils.state` and :mod:`sparse_keras.utils.tracing` — state that traced train steps
  must read live, and retracing them when what they captured changes.
"""

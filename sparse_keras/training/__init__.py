"""TensorFlow-only training machinery the binaries share; import explicitly: ``import sparse_keras.training``.

``sparse_keras`` itself never imports this subpackage (the core runs on any Keras backend), and nothing
here is imported by the package ``__init__`` either: pull in the module you need.

* :mod:`sparse_keras.training.distribute` — which ``tf.distribute`` strategy a run uses.
* :mod:`sparse_keras.training.loop` — the custom training loop: one ``tf.function`` step run by
  ``strategy.run``, hooks (ADMM among them) between epochs in cross-replica context.
"""

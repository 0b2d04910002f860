"""TensorFlow-only training machinery: experiments from a config; import explicitly: ``import sparse_keras.training``.

``sparse_keras`` itself never imports this subpackage (the core runs on any Keras backend), and nothing
here is imported by the package ``__init__`` either: pull in the module you need.

* :mod:`sparse_keras.training.experiment` — one experiment from a config (``configs/common.py``): checks,
  stages, resume, reports, export; what ``python -m train.train`` calls.
* :mod:`sparse_keras.training.stages` — each sparsity method's config keys, checks and stages.
* :mod:`sparse_keras.training.reports` — per-epoch summaries, the run's report and exports.
* :mod:`sparse_keras.training.mu_path` — the ADMM solution path (Kiaee et al. 2016, Table 3 and Fig. 2).
* :mod:`sparse_keras.training.sweep` — the efficient frontier: one experiment per point, baselines, plots.
* :mod:`sparse_keras.training.cli` — the binaries' shared command line (``--config``, ``--workdir``).
* :mod:`sparse_keras.training.distribute` — which ``tf.distribute`` strategy a run uses.
* :mod:`sparse_keras.training.loop` — the custom training loop: one ``tf.function`` step run by
  ``strategy.run``, hooks (ADMM among them) between epochs in cross-replica context.
* :mod:`sparse_keras.training.checkpoint`, :mod:`~sparse_keras.training.workdir`,
  :mod:`~sparse_keras.training.optimizers` — checkpoints, a run's workdir, optimizers and schedules.
"""

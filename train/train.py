r"""The training binary: any registered model, any sparsity method, from one config.

  python -m train.train --config=configs/<method>/<experiment>.py --workdir=runs/x \
      [--config.epochs=2 --config.data.train_examples=2048 --config.mixed_precision=mixed_bfloat16 ...]

The config's schema is ``configs/common.py``; the run itself (stages, resume, reports, export) is
:func:`sparse_keras.training.experiment.run`, which writes the resolved config to ``<workdir>/config.json``
before anything else. What a workdir holds and how a killed run resumes: docs/runs.md.
"""

from sparse_keras.training import cli, experiment

if __name__ == "__main__":
    cli.main(experiment.run, "Path to a config file under configs/ (schema: configs/common.py).")

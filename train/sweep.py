r"""The efficient-frontier binary: one ssr experiment per alpha of a grid, baselines, frontier and plots.

  python -m train.sweep --config=configs/ssr/<name>.py --workdir=runs/frontier \
      [--config.sweep.alphas='(1e-4, 1e-3)' --config.epochs=2 ...]

The config is the common schema plus ``config.sweep``; the sweep is :func:`sparse_keras.training.sweep.run`
(each point its own run in ``<workdir>/<variant>/alpha_<a>/``, with its own ``config.json``; the sweep's
config goes to ``<workdir>/sweep_config.json``). See docs/frontier.md.
"""

from sparse_keras.training import cli, sweep

if __name__ == "__main__":
    cli.main(sweep.run, "Path to a sweep config under configs/ssr/ (schema: configs/common.py + config.sweep).")

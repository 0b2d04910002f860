"""The ADMM solution path of Kiaee et al. 2016 (Algorithm 1): its hooks, Table 3 and Fig. 2.

The ``admm`` method with ``config.method.mu_path`` (:mod:`.stages`) trains along an increasing mu grid; each
finished mu is one row of the path: mu, test accuracy, zero filters per layer ("Filter (#)"), sparsity %,
training epochs, and the multiply-adds left when zero filters are skipped. The run writes

* ``solution_path.{csv,md}``: the paper's Table 3 layout, a first row for the dense model (mu = 0);
* ``solution_path.png``: Fig. 2, accuracy against mu and against sparsity.
"""

import os

import numpy as np

from sparse_keras.reports import figures
from sparse_keras.utils import tables

FILES = ("solution_path.csv", "solution_path.md", "solution_path.png")


class Evaluate:
    """Hook: test accuracy into the epoch's logs, before ADMM reads them into its solution-path row."""

    def __init__(self, evaluate):
        self.evaluate = evaluate

    def on_epoch_end(self, epoch, logs=None):
        logs["test_accuracy"], logs["test_loss"] = self.evaluate()


class PathMacs:
    """Hook: the multiply-adds left after each finished mu, into its row of the path (after ADMM's hook)."""

    def __init__(self, model, admm):
        self.model, self.admm = model, admm

    def on_epoch_end(self, epoch, logs=None):
        if self.admm.history and "macs" not in self.admm.history[-1]:
            self.admm.history[-1]["macs"] = filter_macs(self.model, self.admm)[1]


def filter_macs(model, admm):
    """Multiply-adds of the sparsified convs when zero filters are skipped, and when they are not."""
    dense = sparse = 0
    counts = admm.sparsity()
    for target in admm.targets:
        layer = target.slot.layer
        shape = target.canonical_shape
        positions = int(np.prod(layer.output.shape[1:-1])) if len(shape) == 4 else 1
        per_filter = int(np.prod(shape[:-2])) if len(shape) == 4 else 1
        blocks, zero = counts["blocks"][target.path], counts["zero_blocks"][target.path]
        filters = int(np.prod(shape[-2:]))
        dense += positions * per_filter * filters
        sparse += positions * per_filter * filters * (blocks - zero) // max(blocks, 1)
    return dense, sparse


def path_rows(history, dense_macs, baseline_accuracy, accuracy_key="test_accuracy"):
    """Table 3's rows: the dense model (mu = 0), then one per finished mu of ``history`` (``ADMM.history``)."""
    rows = [{"mu": 0.0, "accuracy": baseline_accuracy, "sparsity_percent": 0.0, "epochs": 0, "macs": dense_macs}]
    for r in history:
        row = {
            "mu": r["mu"],
            "accuracy": r.get(accuracy_key, float("nan")),
            "sparsity_percent": 100 * r["sparsity"],
            "epochs": r["epoch"],
            "macs": r.get("macs", dense_macs),
        }
        row.update({f"zero_filters[{p.split('/')[0]}]": n for p, n in r["zero_blocks"].items()})
        rows.append(row)
    return rows


def write_path(rows, workdir):
    """``solution_path.csv`` and ``solution_path.md`` in ``workdir``, each written atomically."""
    fields = list(dict.fromkeys(k for row in rows for k in row))
    cells = [[row.get(f, "") for f in fields] for row in rows]
    shown = [[f"{c:.4g}" if isinstance(c, float) else str(c) for c in row] for row in cells]
    tables.save(os.path.join(workdir, "solution_path"), csv=tables.csv_text(fields, cells),
                md=tables.markdown(fields, shown))


def plot_path(rows, path, title):
    """Fig. 2: accuracy against mu (log scale, the dense model dashed) and against sparsity."""
    plt = figures.pyplot()
    fig, (by_mu, by_sparsity) = plt.subplots(1, 2, figsize=(10, 3.8))
    path_rows_only = rows[1:]
    by_mu.semilogx([r["mu"] for r in path_rows_only], [r["accuracy"] for r in path_rows_only], "o-")
    by_mu.axhline(rows[0]["accuracy"], color="k", linestyle="--", label="dense")
    by_mu.set_xlabel("mu")
    by_mu.set_ylabel("test accuracy")
    by_mu.legend()
    by_sparsity.plot([r["sparsity_percent"] for r in rows], [r["accuracy"] for r in rows], "o-")
    by_sparsity.set_xlabel("sparsity of the sparsified layers (%)")
    by_sparsity.set_ylabel("test accuracy")
    fig.suptitle(title)
    figures.save_figure(fig, path)


def write_outputs(record, baseline_accuracy, summary, workdir, title):
    """Table 3 and Fig. 2 of a finished path (``record``: the ADMM stage's history and dense multiply-adds);
    adds the rows to ``summary`` as ``solution_path``; returns the names of the files written."""
    rows = path_rows(record["history"], record["dense_macs"], baseline_accuracy)
    write_path(rows, workdir)
    plot_path(rows, os.path.join(workdir, "solution_path.png"), title)
    summary["solution_path"] = rows
    print(open(os.path.join(workdir, "solution_path.md")).read())
    return FILES

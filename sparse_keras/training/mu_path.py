r"""ADMM sparsity training along the mu path, as in Kiaee et al. 2016 (Algorithm 1).

  python -m train.admm --config=configs/admm/admm_cnn_fashion_mnist.py --workdir=runs/admm \
      [--config.penalty=l1 --config.max_mus=4 ...]

Dense pre-training (or ``config.pretrained``), then for each mu: ADMM iterations, ``W := F``, masked
fine-tuning, one row of the solution path. Writes to ``workdir``:

* ``solution_path.{csv,md}`` — the paper's Table 3 layout: mu, accuracy, zero filters per layer
  ("Filter (#)"), sparsity %, training epochs, and the multiply-adds left when zero filters are skipped;
* ``solution_path.png`` — Fig. 2: accuracy against mu and against sparsity;
* ``checkpoints/`` — weights, optimizer, position, ADMM state (F, Gamma, masks, the path so far) every
  ``config.checkpoint_every_steps`` steps and at each epoch end: rerunning the same command resumes exactly;
* ``model.keras`` and ``saved_model/`` — the model after the last mu (zero filters exact), ``summary.json``.

It runs in the custom ``tf.distribute`` loop shared with ``train.train`` (MirroredStrategy over the local
devices; MultiWorker when ``TF_CONFIG`` names several workers).
"""

import csv
import io as _io
import json
import os

from train import common


# Keys that change how a run is watched, not what it computes: a rerun may change them.
COSMETIC_KEYS = ("progress", "checkpoint_every_steps")


def check_config(config):
    """Fails before any work with a message naming the bad key and value."""
    from sparse_keras import admm as admm_lib

    for key in ("learning_rate", "rho", "mu_start", "mu_stop", "epsilon"):
        if not isinstance(config[key], (int, float)) or not 0 < config[key] < float("inf"):
            raise ValueError(f"config.{key} must be a finite positive number, got {config[key]!r}")
    for key in ("batch_size", "mu_num", "delta", "nu", "xi"):
        if not isinstance(config[key], int) or config[key] < 1:
            raise ValueError(f"config.{key} must be a positive integer, got {config[key]!r}")
    if not isinstance(config.pretrain_epochs, int) or config.pretrain_epochs < 0:
        raise ValueError(f"config.pretrain_epochs must be a non-negative integer, got {config.pretrain_epochs!r}")
    from sparse_keras.data import catalog

    split_size = catalog.spec(config.dataset).num_train_examples
    examples = config.train_examples if config.train_examples is not None else split_size
    if not isinstance(examples, int) or not 1 <= examples <= split_size:
        raise ValueError(f"config.train_examples must be None or an integer in [1, {split_size}] (the train split of "
                         f"{config.dataset}), got {config.train_examples!r}")
    if config.batch_size > examples:
        raise ValueError(f"config.batch_size={config.batch_size} is larger than the {examples} training examples")
    admm_lib.check_stability(config.learning_rate, config.rho, config.momentum,
                             names=("config.learning_rate", "config.rho", "config.momentum"))
    if config.max_mus is not None and config.max_mus < 1:
        raise ValueError(f"config.max_mus must be None or a positive integer, got {config.max_mus!r}")
    if config.pretrained is not None and not os.path.isfile(config.pretrained):
        raise ValueError(f"config.pretrained={config.pretrained!r} is not a file")
    # Builds the callback once so that penalty/block/stopping/guard errors surface now.
    admm_lib.ADMM(config.penalty, mu=1.0, rho=config.rho, block=config.block, stopping=config.stopping, guard=config.guard)


def mu_path(config):
    from sparse_keras import admm as admm_lib

    full = admm_lib.MuPath.log_grid(
        config.mu_start, config.mu_stop, config.mu_num, config.mu_start_index, delta=config.delta, nu=config.nu, xi=config.xi
    )
    mus = full.mus[: config.max_mus] if config.max_mus else full.mus
    return admm_lib.MuPath(mus, delta=config.delta, nu=config.nu, xi=config.xi)


def filter_macs(model, admm):
    """Multiply-adds of the sparsified convs when zero filters are skipped, and when they are not."""
    import numpy as np

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


def path_rows(admm, model, baseline_accuracy, accuracy_key):
    dense_macs, _ = filter_macs(model, admm)
    rows = [{"mu": 0.0, "accuracy": baseline_accuracy, "sparsity_percent": 0.0, "epochs": 0, "macs": dense_macs}]
    for r in admm.history:
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
    from sparse_keras import io

    fields = list(dict.fromkeys(k for row in rows for k in row))
    out = _io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    io.write_text(os.path.join(workdir, "solution_path.csv"), out.getvalue())
    lines = ["| " + " | ".join(fields) + " |", "|" + "---|" * len(fields)]
    for row in rows:
        cells = [f"{row.get(f, ''):.4g}" if isinstance(row.get(f), float) else str(row.get(f, "")) for f in fields]
        lines.append("| " + " | ".join(cells) + " |")
    io.write_text(os.path.join(workdir, "solution_path.md"), "\n".join(lines) + "\n")


def plot_path(rows, path, title):
    from sparse_keras import visualize

    plt = visualize.pyplot()
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
    visualize.save_figure(fig, path)


class _Evaluate:
    """Hook: test accuracy into the epoch's logs, before ADMM reads them into its solution-path row."""

    def __init__(self, model, test):
        self.model, self.test = model, test

    def on_epoch_end(self, epoch, logs=None):
        logs["test_accuracy"], logs["test_loss"] = common.evaluate(self.model, self.test)
        print(f"  epoch {epoch + 1}: loss {logs['loss']:.4f}, test accuracy {logs['test_accuracy']:.4f}")


class _PathMacs:
    """Hook: the multiply-adds left after each finished mu, into its row of the path (after ADMM's hook)."""

    def __init__(self, model, admm):
        self.model, self.admm = model, admm

    def on_epoch_end(self, epoch, logs=None):
        if self.admm.history and "macs" not in self.admm.history[-1]:
            self.admm.history[-1]["macs"] = filter_macs(self.model, self.admm)[1]


def run(config, workdir, strategy=None, overwrite=False):
    """The whole job; returns the summary written to ``workdir/summary.json``.

    Two stages in the shared ``tf.distribute`` loop: dense pre-training (skipped with ``config.pretrained``)
    and the mu path, ADMM's callback running Algorithm 1 as a hook. Checkpoints every
    ``config.checkpoint_every_steps`` steps and at every epoch end (weights, optimizer, position, F, Gamma,
    masks, the path so far): rerunning the command after a crash resumes exactly.
    """
    from sparse_keras.training import workdir as workdir_lib

    try:
        check_config(config)
    except ValueError as error:
        raise workdir_lib.RunError(str(error)) from error
    import keras

    from sparse_keras import admm as admm_lib
    from sparse_keras import models
    from sparse_keras import data as data_lib
    from sparse_keras.models import admm_paper
    from sparse_keras.training import checkpoint, distribute

    input_shape, num_classes, _ = data_lib.dataset_info(config.dataset)
    path = mu_path(config)
    keras.utils.set_random_seed(config.seed)
    strategy = strategy or distribute.make_strategy(config.get("strategy", "auto"))

    split = "train" if config.train_examples is None else f"train[:{config.train_examples}]"

    def train_data(epoch, stage):
        seed = config.seed * 1_000_003 + stage * 10_007 + epoch  # one deterministic pass per epoch
        return data_lib.load(config.dataset, split, config.batch_size, train=True, seed=seed, data_dir=config.data_dir)

    eval_split = data_lib.catalog.spec(config.dataset).eval_split  # "validation" for ImageNet / Places365
    test = data_lib.load(config.dataset, eval_split, 500, train=False, data_dir=config.data_dir)
    layers = admm_paper.SPARSIFIED.get(config.model)  # the paper's selection; None: every kernel but the classifier
    with strategy.scope():
        if config.pretrained is not None:
            model = keras.saving.load_model(config.pretrained, compile=False)
        else:
            model = models.get(config.model, num_classes=num_classes, input_shape=input_shape)
        optimizer = keras.optimizers.SGD(config.learning_rate, momentum=config.momentum)
        admm = admm_lib.ADMM(config.penalty, mu=path, rho=config.rho, block=config.block, layers=layers,
                             epsilon=config.epsilon, stopping=config.stopping, guard=config.guard, finetune=config.finetune)
    with workdir_lib.claim(workdir, config.to_dict(), overwrite=overwrite, ignore=COSMETIC_KEYS):
        if workdir_lib.finished(workdir):
            print(f"{workdir}: this run finished earlier; its results are left as they are")
            with open(os.path.join(workdir, "summary.json")) as f:
                return json.load(f)
        with strategy.scope():
            checkpointer = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"), model, optimizer)
        summary = _train_path(config, workdir, strategy, model, optimizer, admm, checkpointer, train_data, test, path)
        workdir_lib.mark_finished(workdir, ("solution_path.csv", "solution_path.md", "solution_path.png",
                                            "model.keras", "saved_model", "summary.json"))
    return summary


def _train_path(config, workdir, strategy, model, optimizer, admm, checkpointer, train_data, test, path):
    """Dense pre-training and the mu path, resumed from the newest intact checkpoint; then the outputs."""
    import keras

    from sparse_keras import io
    from sparse_keras.training import loop

    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
    every = config.get("checkpoint_every_steps", None)
    baseline_file = os.path.join(workdir, "baseline.json")
    stage, epoch, batch = checkpointer.saved_position() or (0, 0, 0)
    if stage == 0:
        if epoch or batch:
            checkpointer.restore()
        pretrain_epochs = 0 if config.pretrained is not None else config.pretrain_epochs
        loop.train(model, optimizer, loss_fn, lambda e: train_data(e, 0), strategy=strategy, epochs=pretrain_epochs,
                   hooks=[common.CheckpointHook(checkpointer, 0, every)], initial_epoch=epoch, initial_batch=batch,
                   progress=config.get("progress", True))
        baseline = common.evaluate(model, test)[0]
        io.write_text(baseline_file, json.dumps({"accuracy": baseline}))  # before the checkpoint that needs it
        with strategy.scope():
            admm.attach(model)
        checkpointer.procedures = {"admm": admm}
        checkpointer.save(1, 0, 0)
        epoch = batch = 0
    else:
        with strategy.scope():
            admm.attach(model)
        checkpointer.procedures = {"admm": admm}
        checkpointer.restore()
        baseline = json.loads(open(baseline_file).read())["accuracy"]
        print(f"Resumed from {checkpointer.intact()}: mu {min(admm.mu_index + 1, len(path))} of {len(path)}")
    if admm.phase != "done":
        hooks = [_Evaluate(model, test), admm, _PathMacs(model, admm), common.CheckpointHook(checkpointer, 1, every)]
        loop.train(model, optimizer, loss_fn, lambda e: train_data(e, 1), strategy=strategy, epochs=admm.total_epochs,
                   hooks=hooks, initial_epoch=epoch, initial_batch=batch, progress=config.get("progress", True))
    rows = path_rows(admm, model, baseline, "test_accuracy")
    write_path(rows, workdir)
    plot_path(rows, os.path.join(workdir, "solution_path.png"), f"ADMM-{config.penalty} on {config.model}, {config.dataset}")
    common.export(model, workdir)
    summary = {"baseline_accuracy": baseline, "path": rows, "model": config.model, "dataset": config.dataset}
    io.write_text(os.path.join(workdir, "summary.json"), json.dumps(summary, indent=2))
    print(open(os.path.join(workdir, "solution_path.md")).read())
    return summary


if __name__ == "__main__":
    common.main(run, "Path to a config file under configs/admm/.")

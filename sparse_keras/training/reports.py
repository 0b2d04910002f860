"""What a run shows and leaves: per-epoch summaries, the report, the exports (TensorFlow only).

During training, :class:`Summaries` evaluates at every epoch end, writes TensorBoard scalars (loss, learning
rate, accuracy, per-layer width and zero-filter fraction) and one row of ``history.json``. At the end,
:func:`write_outputs` writes ``report.{md,json}`` (accuracy, params, multiply-adds, per-layer table),
``architecture.{md,png}``, ``training.png``, the method's own files (its stage's ``outputs``), and exports
``model.keras`` and ``saved_model/`` (:func:`export`), each file appearing whole or not at all.
"""

import json
import os
import shutil
import sys
import tempfile
import time
import warnings

import tensorflow as tf

from sparse_keras import analysis, benchmark, shrinking
from sparse_keras.reports import plots
from sparse_keras.training import optimizers
from sparse_keras.training import workdir as workdir_lib
from sparse_keras.utils import files

# Where a shrunk model may be timed (config.latency_runtimes): the runtimes of a CPU model that ships.
LATENCY_RUNTIMES = ("tf", "tflite")
OUTPUTS = ("architecture.md", "architecture.png", "training.png", "model.keras", "saved_model", "report.md",
           "report.json")


def load_json(path):
    """The JSON object in ``path``; ``{}`` when there is no such file yet."""
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


class Summaries:
    """Hook: evaluation and TensorBoard scalars at each epoch end (accuracy, lr, per-layer structure)."""

    def __init__(self, writer, model, optimizer, evaluate, stage, offset, tau, scheme=None, history_file=None):
        self.writer, self.model, self.optimizer, self.evaluate = writer, model, optimizer, evaluate
        self.stage, self.offset, self.tau, self.scheme = stage, offset, tau, scheme
        self.history_file = history_file

    def on_epoch_end(self, epoch, logs=None):
        started = time.perf_counter()
        accuracy, test_loss = self.evaluate()
        logs.update(test_accuracy=accuracy, test_loss=test_loss)
        report = analysis.report(self.model, tau=self.tau, scheme=self.scheme)
        seconds = logs.get("seconds", 0.0) + time.perf_counter() - started  # the steps and this evaluation
        step = self.offset + epoch + 1
        with self.writer.as_default():
            tf.summary.scalar("train/loss", logs["loss"], step=step)
            tf.summary.scalar("test/accuracy", accuracy, step=step)
            tf.summary.scalar("test/loss", test_loss, step=step)
            tf.summary.scalar("train/learning_rate", optimizers.current_learning_rate(self.optimizer), step=step)
            tf.summary.scalar("model/macs", report.macs, step=step)
            for row in report.layers:
                tf.summary.scalar(f"width/{row.layer}", row.width, step=step)
                tf.summary.scalar(f"zero_filter_fraction/{row.layer}", 1 - row.width / max(row.base_width, 1), step=step)
                if row.sizes:
                    mean = sum(s * n for s, n in row.sizes.items()) / max(sum(row.sizes.values()), 1)
                    tf.summary.scalar(f"mean_kernel_size/{row.layer}", mean, step=step)
        self.writer.flush()
        row = {"epoch": step, "stage": self.stage, "data_loss": logs["loss"] - logs.get("penalty", 0.0),
               "penalty": logs.get("penalty", 0.0), "test_accuracy": accuracy, "macs": report.macs,
               "base_macs": report.base_macs, "seconds": seconds,
               **{k: v for k, v in logs.items() if k.startswith("admm_") and isinstance(v, (int, float))}}
        if self.history_file:
            history = load_json(self.history_file)
            history[str(step)] = row  # keyed by epoch: an epoch run again after a resume replaces its row
            files.write_text(self.history_file, json.dumps(history, indent=2))
        print("  " + epoch_line(row))


def epoch_line(row):
    """One epoch in words: the data loss and the penalty apart, ADMM's residual, accuracy, multiply-adds."""
    parts = [f"[{row['stage']}] epoch {row['epoch']}: data loss {row['data_loss']:.4f}"]
    if row["penalty"]:
        parts.append(f"penalty {row['penalty']:.4f}")
    if "admm_primal_residual" in row:
        parts.append(f"ADMM ||W - F|| {row['admm_primal_residual']:.4g}")
    parts.append(f"test accuracy {row['test_accuracy']:.4f}")
    parts.append(f"multiply-adds {row['macs'] / max(row['base_macs'], 1):.1%} of {row['base_macs']:,}")
    if row.get("seconds") is not None:
        parts.append(f"{row['seconds']:.0f} s")
    return ", ".join(parts)


def history_markdown(rows):
    """The epoch-by-epoch table of the report, ending on the epochs' total time (training and evaluation)."""
    lines = ["| epoch | stage | data loss | penalty | ADMM ||W - F|| | test accuracy | multiply-adds left | seconds |",
             "|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        residual = f"{r['admm_primal_residual']:.4g}" if "admm_primal_residual" in r else "-"
        seconds = f"{r['seconds']:.0f}" if r.get("seconds") is not None else "-"  # histories written before
        lines.append(f"| {r['epoch']} | {r['stage']} | {r['data_loss']:.4f} | {r['penalty']:.4f} | {residual} | "
                     f"{r['test_accuracy']:.4f} | {r['macs'] / max(r['base_macs'], 1):.1%} | {seconds} |")
    timed = [r["seconds"] for r in rows if r.get("seconds") is not None]
    if timed:
        total = sum(timed)
        lines += ["", f"{len(timed)} epochs took {int(total // 60)} min {total % 60:.0f} s (steps and evaluations)."]
    return "\n".join(lines) + "\n"


def warnings_of(summary, architecture, initial_accuracy):
    """What makes a finished run's results suspect, for the top of its report (and stderr)."""
    out = []
    gone = [row.layer for row in architecture.layers if row.width == 0]
    if gone:
        out.append(f"{len(gone)} of {len(architecture.layers)} layers pruned to width 0 ({', '.join(gone[:6])}"
                   f"{', ...' if len(gone) > 6 else ''}): the method's strength (mu, kernel_strength, alpha) "
                   "removed whole layers, and the model cannot pass anything through them")
    if initial_accuracy is not None and summary["test_accuracy"] <= initial_accuracy:
        out.append(f"test accuracy {summary['test_accuracy']:.4f} is not above the untrained model's "
                   f"{initial_accuracy:.4f}: this model is no better than its initialisation")
    return out


def write_outputs(config, job, workdir):
    """Reports and exports of the trained (restored) model, each written atomically; returns the report
    dict and the names of every output written."""
    model, tau, scheme = job.model, job.tau, job.scheme
    workdir_lib.kill_point("trained")
    accuracy, test_loss = job.evaluate()
    architecture = analysis.report(model, tau=tau, scheme=scheme)
    workdir_lib.kill_point("architecture")
    architecture.save(os.path.join(workdir, "architecture"))
    plots.plot_architecture(architecture, os.path.join(workdir, "architecture.png"),
                               title=f"{config.model.name}, {config.method.name}")
    transitions = load_json(os.path.join(workdir, "transitions.json"))
    history = [row for _, row in sorted(load_json(os.path.join(workdir, "history.json")).items(), key=lambda kv: int(kv[0]))]
    if history:
        plots.plot_training(history, os.path.join(workdir, "training.png"),
                                title=f"{config.model.name} on {config.data.name}, {config.method.name}: stage by stage")
    summary = {
        "model": config.model.name,
        "dataset": config.data.name,
        "method": config.method.name,
        "test_accuracy": accuracy,
        "test_loss": test_loss,
        "initial_test_accuracy": transitions.get("initial"),
        "params": architecture.learned_total_params,
        "base_params": architecture.total_params,
        "macs": architecture.macs,
        "base_macs": architecture.base_macs,
        "replicas": job.strategy.num_replicas_in_sync,
        "mixed_precision": config.mixed_precision,
        "layers": architecture.to_dict()["layers"],
        "history": history,
    }
    summary["warnings"] = warnings_of(summary, architecture, transitions.get("initial"))
    for warning in summary["warnings"]:
        print(f"WARNING: {warning}", file=sys.stderr)
    written = list(OUTPUTS)
    for stage in job.stages:
        if stage.outputs is not None:
            written += stage.outputs(model, summary, transitions, workdir)
    shipped, comparison = model, None
    if config.get("shrink", False):
        workdir_lib.kill_point("dense_with_zeros")
        runtimes = tuple(config.get("latency_runtimes", ("tf",)))
        shipped, comparison = _shrink(model, job.info.input_shape, tau, workdir, runtimes)
        written.append("dense_with_zeros.keras")
        summary["shrunk"] = {
            "params": comparison.params[1],
            "macs": comparison.macs[1],
            "keras_file_bytes": comparison.file_bytes,
            "speedup": {f"{runtime}@{batch}": comparison.speedup(runtime, batch) for runtime, batch in comparison.latency},
            "mac_reduction": comparison.mac_reduction,
            "test_accuracy": job.evaluate(shipped)[0],
        }
    export(shipped, workdir)
    markdown = _report_markdown(summary, architecture)
    if history:
        markdown += "\n## Training, epoch by epoch\n\n" + history_markdown(history)
    if comparison is not None:
        markdown += "\n## Shrunk model (what is exported)\n\n" + comparison.to_markdown()
    workdir_lib.kill_point("report")
    files.write_text(os.path.join(workdir, "report.md"), markdown)
    files.write_text(os.path.join(workdir, "report.json"), json.dumps(summary, indent=2))
    print(markdown)
    return summary, tuple(written)


def _shrink(model, input_shape, tau, workdir, runtimes):
    """The physically smaller model and its measured comparison with ``model`` on this CPU."""
    shrunk = shrinking.shrink(model, tau=tau)
    with warnings.catch_warnings():
        # compare() warns where multiply-adds fell but time did not; the report ends with those same lines.
        warnings.simplefilter("ignore", UserWarning)
        comparison = benchmark.compare(model, shrunk, input_shape, batch_sizes=(1, 64), runtimes=runtimes)
    with files.atomic_path(os.path.join(workdir, "dense_with_zeros.keras")) as tmp:
        model.save(tmp)
    return shrunk, comparison


def _report_markdown(summary, architecture):
    warnings = [f"**WARNING: {w}.**" for w in summary.get("warnings", [])]
    ratio = summary["base_macs"] / summary["macs"] if summary["macs"] else float("inf")
    head = [
        f"# {summary['model']} on {summary['dataset']}, method {summary['method']}",
        "",
        f"Test accuracy {summary['test_accuracy']:.4f}; parameters {summary['params']:,} of {summary['base_params']:,}; "
        f"multiply-adds {summary['macs']:,} of {summary['base_macs']:,} ({ratio:.2f}x fewer when zero structures are skipped); "
        f"{summary['replicas']} replica(s), precision {summary['mixed_precision'] or 'float32'}.",
        "",
    ]
    if warnings:
        head[1:1] = ["", *warnings]
    return "\n".join(head) + architecture.to_markdown()


def export(model, workdir):
    """``model.keras`` and ``saved_model/`` in ``workdir``, each appearing whole or not at all."""
    workdir_lib.kill_point("model.keras")
    with files.atomic_path(os.path.join(workdir, "model.keras")) as tmp:
        model.save(tmp)
    workdir_lib.kill_point("saved_model")
    final = os.path.join(workdir, "saved_model")
    staging = tempfile.mkdtemp(prefix=".tmp-saved_model-", dir=workdir)
    try:
        model.export(staging, format="tf_saved_model", verbose=False)
        workdir_lib.kill_point("saved_model:staged")
        # The old export is moved aside, not deleted, until the new one is in place.
        old = None
        if os.path.exists(final):
            old = tempfile.mkdtemp(prefix=".tmp-old-saved_model-", dir=workdir)
            os.replace(final, os.path.join(old, "saved_model"))
        os.replace(staging, final)
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final

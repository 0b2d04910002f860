"""Real data: MobileNetV2 on Fashion-MNIST, dense vs coupled-channel pruning methods vs tfmot, one MAC budget.

The goals to check (for each structured method): at least 2x fewer multiply-adds than the dense model,
test accuracy within 1.0 point of the dense model's, and a measured CPU speedup at batch 64 of at least
0.6x the multiply-add reduction.

Run::

  python -m benchmarks.mobilenetv2_fashion_mnist --train_examples 20000 --pretrain_epochs 10 --out runs/mnv2
  python -m benchmarks.mobilenetv2_fashion_mnist --quick --methods l1 --out /tmp/mnv2   # smoke run

Model: ``keras.applications.MobileNetV2(weights=None, alpha=0.5, input_shape=(32, 32, 3), classes=10)``, its
BatchNormalization momentum lowered from 0.999 to ``--bn_momentum`` 0.99 (the moving statistics of a
short run would otherwise still hold their initial values and evaluate at chance level).
Data: the first ``--train_examples`` / ``--eval_examples`` of Fashion-MNIST's train / test splits, loaded
through ``sparse_keras.data.load``, resized to 32x32 and tiled to 3 channels per batch in tf.data
(:func:`benchmarks.tfmot_mobilenetv2.dataset`, shared with the tfmot process).

One dense pre-training (Adam, cosine decay) gives the weights every method starts from; then per method:

* ``dense_long``: the dense model trained for as many more epochs as the longest method (the reference that
  tells what the extra epochs alone are worth);
* ``lasso``: ``sparsify_epochs`` with :class:`sparse_keras.regularizers.CoupledGroupLasso`, then
  ``sk.prune.to_target(macs=budget, criterion="group_norm")``;
* ``admm``: ``sparsify_epochs`` with ``sk.admm.ADMM(block="coupled", penalty="l0")`` (Kiaee et al. 2016),
  several F-steps per epoch, per-layer mu putting the hard threshold at the ``--admm_quantile`` of the
  layer's pre-trained group norms; ``finalize`` (W := F), then ``to_target`` tops the removed groups up to
  the budget (the groups ADMM zeroed rank first);
* ``l1``: ``to_target(macs=budget, criterion="magnitude")`` on the dense weights (L1-norm filter pruning,
  Li et al. 2017, on coupled groups);
* each followed by ``finetune_epochs`` of masked fine-tuning, ``sk.shrink``, accuracy of the shrunk model,
  MACs and parameters from ``sk.analysis.report`` (checked against the shrunk model's), and CPU latency of
  shrunk vs dense at batch 1 and 64 (``sk.benchmark.compare``: alternating rounds, each model's best median);
* ``tfmot``: :mod:`benchmarks.tfmot_mobilenetv2` in its own legacy-Keras process, same data and dense
  weights, ``prune_low_magnitude`` to the budget on paper (its non-zero weights' multiply-adds) for ``finetune_epochs``.

Writes ``<out>/mobilenetv2_fashion_mnist.json`` and ``.md`` (atomically) and prints the table and verdicts.
"""

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
import warnings

import keras
import numpy as np

import sparse_keras as sk
from benchmarks import admm_vs_baselines, tfmot_baseline
from benchmarks.regularizer_overhead import _positive_int, describe_device
from benchmarks.tfmot_mobilenetv2 import dataset

METHODS = ("dense_long", "lasso", "admm", "l1", "tfmot")
INPUT_SHAPE = (32, 32, 3)
MAC_GOAL, ACCURACY_GOAL, EFFICIENCY_GOAL = 2.0, 1.0, 0.6  # reduction, points below dense, speedup / reduction
QUICK = dict(train_examples=256, eval_examples=128, pretrain_epochs=1, sparsify_epochs=1, finetune_epochs=1,
             admm_updates_per_epoch=1, latency_rounds=1, latency_repeats=2)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.mobilenetv2_fashion_mnist",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--alpha", type=float, default=0.5, help="MobileNetV2 width multiplier")
    parser.add_argument("--train_examples", type=_positive_int, default=20_000)
    parser.add_argument("--eval_examples", type=_positive_int, default=10_000)
    parser.add_argument("--batch_size", type=_positive_int, default=64)
    parser.add_argument("--pretrain_epochs", type=_positive_int, default=10)
    parser.add_argument("--sparsify_epochs", type=_positive_int, default=3, help="lasso / ADMM training epochs")
    parser.add_argument("--finetune_epochs", type=_positive_int, default=3, help="masked fine-tuning (and tfmot)")
    parser.add_argument("--learning_rate", type=float, default=2e-3, help="Adam, pre-training (cosine decay)")
    parser.add_argument("--finetune_learning_rate", type=float, default=1e-3, help="Adam, sparsify and fine-tune")
    parser.add_argument("--bn_momentum", type=float, default=0.99,
                        help="BatchNormalization momentum (keras.applications: 0.999, too slow for short runs)")
    parser.add_argument("--macs", type=float, default=0.5, help="fraction of the dense multiply-adds to keep")
    parser.add_argument("--lasso_strength", type=float, default=5e-4)
    parser.add_argument("--lasso_norm", default="l2", choices=("l2", "normalized"))
    parser.add_argument("--admm_rho", type=float, default=1.0)
    parser.add_argument("--admm_quantile", type=float, default=0.3,
                        help="per layer, the hard threshold sqrt(2 mu / rho) starts at this quantile of the group norms")
    parser.add_argument("--admm_updates_per_epoch", type=_positive_int, default=4, help="ADMM F-steps per epoch")
    parser.add_argument("--latency_rounds", type=_positive_int, default=5)
    parser.add_argument("--latency_repeats", type=_positive_int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/mobilenetv2_fashion_mnist", help="output directory")
    parser.add_argument("--quick", action="store_true", help=f"smoke-run sizes: {QUICK}")
    args = parser.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    if not 0 < args.macs < 1:
        parser.error(f"--macs must be a fraction in (0, 1), got {args.macs}")
    if not 0 < args.admm_quantile < 1:
        parser.error(f"--admm_quantile must be in (0, 1), got {args.admm_quantile}")
    return args


# -- data and training ----------------------------------------------------------------------------------
def build(args, weights=None):
    model = keras.applications.MobileNetV2(weights=None, alpha=args.alpha, input_shape=INPUT_SHAPE, classes=10)
    set_bn_momentum(model, args.bn_momentum)
    if weights is not None:
        model.set_weights(weights)
    return model


def set_bn_momentum(model, momentum):
    """keras.applications builds MobileNetV2's BatchNormalization with momentum 0.999: its moving statistics
    need thousands of steps to forget their initial values, so a short run evaluates at chance level."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = momentum


def fit(model, data, args, epochs, learning_rate, decay=True, callbacks=(), updates_per_epoch=1):
    """Adam (cosine decay to 0 when ``decay``) for ``epochs`` over the training arrays; returns seconds.

    ``updates_per_epoch`` splits each pass into that many Keras epochs, so that an epoch-end callback
    (ADMM's F-step and dual update) runs that often; the data order is the same either way.
    """
    x, y = data[0], data[1]
    steps = -(-len(x) // args.batch_size)
    if decay:
        learning_rate = keras.optimizers.schedules.CosineDecay(learning_rate, epochs * steps)
    model.compile(keras.optimizers.Adam(learning_rate), "sparse_categorical_crossentropy")
    stream = dataset(x, y, args.batch_size, seed=args.seed).repeat()
    start = time.perf_counter()
    history = model.fit(stream, epochs=epochs * updates_per_epoch, steps_per_epoch=max(steps // updates_per_epoch, 1),
                        callbacks=list(callbacks), verbose=0)
    if not np.all(np.isfinite(history.history["loss"])):
        raise FloatingPointError(f"training loss is not finite: {history.history['loss']}")
    return time.perf_counter() - start


def accuracy(model, data):
    probabilities = model.predict(dataset(data[2], data[3], 256), verbose=0)
    return 100.0 * float(np.mean(np.argmax(probabilities, axis=-1) == data[3]))


# -- the methods ----------------------------------------------------------------------------------------
def sparsify_lasso(model, data, args):
    sk.regularize(model, sk.regularizers.CoupledGroupLasso(args.lasso_strength, norm=args.lasso_norm))
    seconds = fit(model, data, args, args.sparsify_epochs, args.finetune_learning_rate, decay=False)
    sk.unregularize(model)
    return sk.prune.to_target(model, macs=args.macs, criterion="group_norm"), seconds


def admm_mu(model, rho, quantile):
    """``{layer name: mu}``: the l0 hard threshold ``sqrt(2 mu / rho)`` of ADMM's F-step sits at ``quantile``
    of the norms of the groups the layer produces (a coupled group takes its first producer's mu), so every
    layer starts with about that fraction of its groups below threshold whatever its scale."""
    norms = {}
    for group in sk.structure.coupled_groups(model).prunable:
        produced = [s for s in group.slices if s.role == "out" and s.attr != "bias"]
        if produced:
            norm = np.sqrt(sum(float(np.sum(np.square(s.values()))) for s in produced))
            norms.setdefault(produced[0].layer.name, []).append(norm)
    thresholds = {name: float(np.quantile(values, quantile)) for name, values in norms.items()}
    mus = {name: rho * t * t / 2 for name, t in thresholds.items()}
    fallback = float(np.median(list(mus.values())))  # layers that are never a group's first producer
    return lambda layer: mus.get(layer.name, fallback) or fallback


def sparsify_admm(model, data, args):
    admm = sk.admm.ADMM(penalty="l0", mu=admm_mu(model, args.admm_rho, args.admm_quantile), rho=args.admm_rho,
                        block="coupled", update_every=1)
    seconds = fit(model, data, args, args.sparsify_epochs, args.finetune_learning_rate, decay=False,
                  callbacks=[admm], updates_per_epoch=args.admm_updates_per_epoch)
    admm.finalize()  # W := F, every slice of the groups F zeroed set to zero
    sk.admm.remove_masks(model)
    return sk.prune.to_target(model, macs=args.macs, criterion="group_norm"), seconds


def sparsify_l1(model, data, args):
    return sk.prune.to_target(model, macs=args.macs, criterion="magnitude"), 0.0


SPARSIFY = {"lasso": sparsify_lasso, "admm": sparsify_admm, "l1": sparsify_l1}


def run_structured(name, dense, data, args):
    """Sparsify, masked fine-tuning, shrink, measure: one row of the table."""
    keras.utils.set_random_seed(args.seed)
    model = build(args, dense.get_weights())
    selection, sparsify_s = SPARSIFY[name](model, data, args)
    sk.admm.install_masks(model, selection.masks)
    finetune_s = fit(model, data, args, args.finetune_epochs, args.finetune_learning_rate)
    sk.admm.remove_masks(model)
    predicted = sk.analysis.report(model, tau=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        small = sk.shrink(model)
    x = np.random.default_rng(1).random((8, *INPUT_SHAPE), dtype="float32")
    output_gap = float(np.max(np.abs(model.predict_on_batch(x) - small.predict_on_batch(x))))
    shrunk_macs = sk.analysis.report(small, tau=0).base_macs
    row = {
        "method": name,
        "accuracy": accuracy(small, data),
        "macs": int(shrunk_macs),
        "predicted_macs": int(predicted.macs),
        "selection_macs": int(selection.macs_after),
        "macs_match": int(predicted.macs) == int(shrunk_macs),
        "params": int(small.count_params()),
        "predicted_params": int(predicted.learned_total_params),
        "channels_removed": len(selection.groups),
        "channels": int(selection.channels_before),
        "shrink_output_gap": output_gap,
        "shrink_warnings": [str(w.message) for w in caught if "shrink" in str(w.message)],
        "epochs": args.pretrain_epochs + (0 if name == "l1" else args.sparsify_epochs) + args.finetune_epochs,
        "train_s": sparsify_s + finetune_s,
    }
    row.update(latency(dense, small, args))
    return row


def latency(dense, small, args):
    runtime = "tf" if keras.backend.backend() == "tensorflow" else "keras"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the verdict lines judge the speedup
        comparison = sk.benchmark.compare(dense, small, INPUT_SHAPE, batch_sizes=(1, 64), runtimes=(runtime,),
                                          repeats=args.latency_repeats, rounds=args.latency_rounds)
    return {
        "runtime": runtime,
        "dense_latency_ms": {str(b): 1e3 * comparison.latency[runtime, b][0] for b in (1, 64)},
        "latency_ms": {str(b): 1e3 * comparison.latency[runtime, b][1] for b in (1, 64)},
    }


def run_dense_long(dense, data, args):
    keras.utils.set_random_seed(args.seed)
    model = build(args, dense.get_weights())
    extra = args.sparsify_epochs + args.finetune_epochs
    seconds = fit(model, data, args, extra, args.finetune_learning_rate)
    return {"method": "dense_long", "accuracy": accuracy(model, data), "macs": sk.analysis.report(model, tau=0).base_macs,
            "params": int(model.count_params()), "epochs": args.pretrain_epochs + extra, "train_s": seconds}


def run_tfmot(dense, data, args):
    """:mod:`benchmarks.tfmot_mobilenetv2` in a legacy-Keras process on the same data and dense weights."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "inputs.npz")
        named = {f"w:{layer.name}:{i}": keras.ops.convert_to_numpy(w)
                 for layer in dense.layers for i, w in enumerate(layer.weights)}
        np.savez(path, x_train=data[0], y_train=data[1], x_test=data[2], y_test=data[3], **named)
        row, error = tfmot_baseline.run_legacy_keras("benchmarks.tfmot_mobilenetv2", [
            "--data", path, "--macs", repr(args.macs), "--alpha", repr(args.alpha), "--bn_momentum", repr(args.bn_momentum),
            "--epochs", str(args.finetune_epochs), "--batch_size", str(args.batch_size),
            "--learning_rate", repr(args.finetune_learning_rate), "--seed", str(args.seed),
            "--latency_rounds", str(args.latency_rounds), "--latency_repeats", str(args.latency_repeats)])
    if error:
        return {"method": "tfmot", "error": error}
    row["epochs"] = args.pretrain_epochs + args.finetune_epochs
    return row


# -- verdicts and the table -----------------------------------------------------------------------------
def reductions(row, dense):
    """``(executed, claimed)`` multiply-add reductions: tfmot claims its non-zero weights' count on paper."""
    executed = dense["macs"] / max(row["macs"], 1)
    return executed, dense["macs"] / max(row.get("paper_macs", row["macs"]), 1)


def verdicts(row, dense):
    """``{goal: bool}`` for one pruned row against the dense row; the speedup is judged against the claimed
    reduction (for tfmot the on-paper one, which its dense-shaped model cannot turn into time)."""
    reduction, claimed = reductions(row, dense)
    speedup = row["dense_latency_ms"]["64"] / row["latency_ms"]["64"]
    return {
        "macs": reduction >= MAC_GOAL,
        "accuracy": row["accuracy"] >= dense["accuracy"] - ACCURACY_GOAL,
        "speedup": speedup >= EFFICIENCY_GOAL * claimed,
    }


def run(args):
    keras.utils.set_random_seed(args.seed)
    data = admm_vs_baselines.load_fashion_mnist(args.train_examples, args.eval_examples)
    dense = build(args)
    seconds = fit(dense, data, args, args.pretrain_epochs, args.learning_rate)
    report = sk.analysis.report(dense, tau=0)
    rows = [{"method": "dense", "accuracy": accuracy(dense, data), "macs": int(report.base_macs),
             "params": int(dense.count_params()), "epochs": args.pretrain_epochs, "train_s": seconds}]
    for name in args.methods:
        if name == "dense_long":
            rows.append(run_dense_long(dense, data, args))
        elif name == "tfmot":
            rows.append(run_tfmot(dense, data, args))
        else:
            rows.append(run_structured(name, dense, data, args))
        print(json.dumps(rows[-1]), flush=True)
    for row in rows:
        if "latency_ms" in row:
            row["verdicts"] = verdicts(row, rows[0])
    return {"config": vars(args), "backend": keras.backend.backend(), "device": describe_device()[0], "rows": rows}


LABELS = {
    "dense": "dense (pre-trained)",
    "dense_long": "dense, trained as long",
    "lasso": "coupled group lasso + to_target",
    "admm": "coupled ADMM (l0) + to_target",
    "l1": "L1-norm filter pruning (Li et al. 2017)",
    "tfmot": "tfmot prune_low_magnitude (unstructured)",
}


def format_table(result, command):
    args, rows = result["config"], result["rows"]
    dense = rows[0]
    lines = [
        f"command: `{command}`",
        f"backend: {result['backend']}; device: {result['device']}; MobileNetV2 alpha {args['alpha']} at 32x32x3; "
        f"{args['train_examples']:,} training / {args['eval_examples']:,} test images; batch {args['batch_size']}; "
        f"budget: {args['macs']:g} of the dense multiply-adds",
        "",
        "| method | epochs | test acc. (%) | MACs | MAC reduction | params | latency b1 (ms) | latency b64 (ms) "
        "| speedup b1 / b64 | speedup b64 / MAC red. |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        label = LABELS[row["method"]]
        if "error" in row:
            lines.append(f"| {label} | - | failed: {row['error'][-300:]} | | | | | | | |")
            continue
        reduction = dense["macs"] / max(row["macs"], 1)
        cells = [label, str(row["epochs"]), f"{row['accuracy']:.2f}", f"{row['macs']:,}", f"{reduction:.2f}x",
                 f"{row['params']:,}"]
        if "latency_ms" in row:
            speed = {b: row["dense_latency_ms"][b] / row["latency_ms"][b] for b in ("1", "64")}
            cells += [f"{row['latency_ms']['1']:.2f} (dense {row['dense_latency_ms']['1']:.2f})",
                      f"{row['latency_ms']['64']:.2f} (dense {row['dense_latency_ms']['64']:.2f})",
                      f"{speed['1']:.2f}x / {speed['64']:.2f}x", f"{speed['64'] / reduction:.2f}"]
        else:
            cells += ["", "", "", ""]
        lines.append("| " + " | ".join(cells) + " |")
    tfmot = next((r for r in rows if r["method"] == "tfmot" and "error" not in r), None)
    if tfmot:
        lines += ["", f"tfmot's sparsity is unstructured: its {tfmot['nonzero_params']:,} non-zero of "
                      f"{tfmot['params']:,} parameters need {tfmot['paper_macs']:,} multiply-adds on paper "
                      f"({dense['macs'] / max(tfmot['paper_macs'], 1):.2f}x fewer), but the stripped model runs "
                      f"the dense {tfmot['macs']:,}; its latency is the dense tf_keras model's (both timed in its process)."]
    checks = [r for r in rows if "macs_match" in r]
    if checks:
        lines += ["", "report-predicted vs shrunk multiply-adds: " + "; ".join(
            f"{r['method']} {r['predicted_macs']:,} vs {r['macs']:,} ({'equal' if r['macs_match'] else 'DIFFERENT'}), "
            f"shrunk-vs-masked output gap {r['shrink_output_gap']:.1e}" for r in checks)]
    lines += ["", "Goals (>= 2x fewer MACs, accuracy within 1.0 point of dense, speedup at batch 64 >= 0.6x the MAC "
                  "reduction):"]
    lines += [verdict_line(r, dense) for r in rows if "verdicts" in r]
    return "\n".join(lines)


def verdict_line(row, dense):
    v = row["verdicts"]
    reduction, claimed = reductions(row, dense)
    speedup = row["dense_latency_ms"]["64"] / row["latency_ms"]["64"]
    paper = f" executed ({claimed:.2f}x on paper)" if claimed != reduction else ""
    parts = [f"MACs {reduction:.2f}x{paper} {'PASS' if v['macs'] else 'FAIL'}",
             f"accuracy {row['accuracy'] - dense['accuracy']:+.2f} points {'PASS' if v['accuracy'] else 'FAIL'}",
             f"speedup {speedup:.2f}x vs needed {EFFICIENCY_GOAL * claimed:.2f}x {'PASS' if v['speedup'] else 'FAIL'}"]
    overall = "PASS" if all(v.values()) else "FAIL"
    return f"- {overall} {LABELS[row['method']]}: " + "; ".join(parts)


def write_atomically(path, text):
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=directory, delete=False, suffix=".tmp") as handle:
        handle.write(text)
    os.replace(handle.name, path)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    result = run(args)
    command = f"KERAS_BACKEND={keras.backend.backend()} python -m benchmarks.mobilenetv2_fashion_mnist {shlex.join(argv)}"
    table = format_table(result, command.rstrip())
    write_atomically(os.path.join(args.out, "mobilenetv2_fashion_mnist.json"), json.dumps(result, indent=1))
    write_atomically(os.path.join(args.out, "mobilenetv2_fashion_mnist.md"), table + "\n")
    print(table)
    return result


if __name__ == "__main__":
    main()

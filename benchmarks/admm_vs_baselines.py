"""ADMM-l0 / ADMM-l1 against a dense net, filter group lasso and tfmot pruning on Fashion-MNIST.

Target: ">= 45% of the 2-D filters of the sparsified layers removed within 0.5 points of the dense
baseline's test accuracy", checked per method.

Run (TensorFlow backend: the data come from tfds)::

  python -m benchmarks.admm_vs_baselines --quick --skip_tfmot          # smoke run, numbers mean nothing
  python -m benchmarks.admm_vs_baselines --epochs 10 --train_examples 60000 --mus 0.3,1,3 \\
      --admm_epochs 4 --finetune_epochs 2 --output admm_vs_baselines.json
      # the full run: 58 epochs of 60k examples, about 3-3.5 h on 2 shared CPU cores (~200 s/epoch)

Method: ``admm_cnn`` (28x28x1) is trained dense for ``--epochs`` (SGD, momentum 0.9, as the Fashion-MNIST
ADMM config). Every other method starts from those weights and trains ``--admm_epochs`` +
``--finetune_epochs`` epochs, sparsifying the paper's layers (``admm_paper.SPARSIFIED["admm_cnn"]``):

* ADMM-l0 / ADMM-l1, per ``--mus`` / ``--l1_mus`` value (by default l1 gets the mu with the same block
  threshold, ``mu_l1 = rho sqrt(2 mu / rho)``): filter blocks, an F-step and dual update after every epoch, then
  ``finalize()`` (W := F, masks) and masked fine-tuning;
* filter group lasso: ``FilterGroupLasso(--gl_strength)`` on the same layers, then
  ``prune.threshold(tau, scheme="filter")`` and masked fine-tuning without the penalty. ``tau`` defaults
  to the filter-norm quantile that removes as many filters as the reference ADMM-l0 run (matched sparsity);
* tfmot: ``prune_low_magnitude`` with ``ConstantSparsity`` at the reference ADMM-l0 run's weight sparsity
  in the sparsified layers, in its own process (``benchmarks/tfmot_baseline.py``, legacy Keras 2).

The reference ADMM-l0 run is the one with the first ``--mus`` value. Latencies are the median of
``predict_on_batch`` calls after warm-up; masked zeros do not speed up dense kernels (shrinking the layers
comes later), so equal latencies are expected.
"""

import argparse
import json
import math
import os
import sys
import tempfile
import time

import keras
import numpy as np

from benchmarks import tfmot_baseline
from sparse_keras import prune
from sparse_keras.models import admm_paper
from sparse_keras.regularizers import FilterGroupLasso
from sparse_keras.sparsity import masking
from sparse_keras.sparsity.admm import ADMM
from sparse_keras.sparsity.attach import regularize
from sparse_keras.utils import files

TARGET_REMOVED_PCT = 45.0
TARGET_ACCURACY_DROP = 0.5  # points of test accuracy
LAYERS = admm_paper.sparsified_layers("admm_cnn")
INPUT_SHAPE = (28, 28, 1)
QUICK = {"train_examples": 512, "test_examples": 256, "epochs": 1, "admm_epochs": 1, "finetune_epochs": 1,
         "latency_repeats": 3}
LATENCY_NOTE = "masked zeros do not speed up dense kernels (shrinking comes later): equal latencies are expected"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.admm_vs_baselines",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10, help="dense pre-training epochs")
    parser.add_argument("--train_examples", type=int, default=60_000, help="first N training examples")
    parser.add_argument("--test_examples", type=int, default=10_000, help="first N test examples")
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--learning_rate", type=float, default=0.005, help="SGD (momentum 0.9), all phases")
    parser.add_argument("--mus", default="1.0", help="comma-separated ADMM mu values; the first is the reference")
    parser.add_argument("--l1_mus", default=None,
                        help="ADMM-l1 mu values; default: per --mus, the mu whose mu/rho equals l0's sqrt(2 mu/rho)")
    parser.add_argument("--rho", type=float, default=100.0)
    parser.add_argument("--guard", default="0.5", help="ADMM over-pruning guard, a fraction or 'none'")
    parser.add_argument("--admm_epochs", type=int, default=4,
                        help="sparsifying epochs (ADMM W-steps, group-lasso training; tfmot adds the fine-tuning)")
    parser.add_argument("--finetune_epochs", type=int, default=2, help="masked fine-tuning epochs")
    parser.add_argument("--gl_strength", type=float, default=1e-4, help="FilterGroupLasso strength")
    parser.add_argument("--tau", type=float, default=None,
                        help="group-lasso pruning threshold; default: match the reference ADMM-l0 filter count")
    parser.add_argument("--latency_repeats", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="tiny smoke run (numbers mean nothing)")
    parser.add_argument("--skip_tfmot", action="store_true", help="no tfmot subprocess (it needs the tfmot extra)")
    parser.add_argument("--output", default=None, help="write the results here as JSON")
    args = parser.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    for key in ("epochs", "train_examples", "test_examples", "batch_size", "admm_epochs", "latency_repeats"):
        if getattr(args, key) < 1:
            parser.error(f"--{key} must be a positive integer, got {getattr(args, key)}")
    if args.finetune_epochs < 0:
        parser.error(f"--finetune_epochs must be >= 0, got {args.finetune_epochs}")
    if args.rho <= 0:
        parser.error(f"--rho must be positive, got {args.rho}")
    args.mus = _floats(parser, "mus", args.mus)
    if args.l1_mus is None:
        # Same block threshold for both penalties: l1 zeroes norms <= mu/rho, l0 norms <= sqrt(2 mu/rho).
        args.l1_mus = [args.rho * math.sqrt(2 * mu / args.rho) for mu in args.mus]
    else:
        args.l1_mus = _floats(parser, "l1_mus", args.l1_mus)
    args.guard = None if str(args.guard).lower() == "none" else float(args.guard)
    return args


def _floats(parser, flag, text):
    try:
        values = [float(m) for m in text.split(",")]
    except ValueError:
        parser.error(f"--{flag} must be comma-separated floats, got {text!r}")
    if not all(v > 0 and math.isfinite(v) for v in values):
        parser.error(f"--{flag} must be positive finite floats, got {text!r}")
    return values


# -- data and models ------------------------------------------------------------------------------------
def load_fashion_mnist(train_examples, test_examples):
    """The first examples of each split as in-memory numpy arrays (images in [0, 1], NHWC)."""
    from sparse_keras import data  # noqa: PLC0415 (TensorFlow and tfds; only this benchmark needs them)

    def arrays(split):
        batches = list(data.load("fashion_mnist", split, 1024, train=False).as_numpy_iterator())
        return np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])

    x_train, y_train = arrays(f"train[:{train_examples}]")
    x_test, y_test = arrays(f"test[:{test_examples}]")
    return x_train, y_train, x_test, y_test


def _model(args, weights=None):
    model = admm_paper.admm_cnn(10, INPUT_SHAPE)
    if weights is not None:
        model.set_weights(weights)
    _compile(model, args)
    return model


def _compile(model, args):
    model.compile(keras.optimizers.SGD(args.learning_rate, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))


def _fit(model, data, args, epochs, callbacks=()):
    if epochs:
        model.fit(data[0], data[1], batch_size=args.batch_size, epochs=epochs, verbose=0, callbacks=list(callbacks))


def measure(model, data, args, method, train_s, **extra):
    """One table row: accuracy, zero filters, non-zero parameters and inference latency of ``model``."""
    logits = model.predict(data[2], batch_size=256, verbose=0)
    nonzero, total = tfmot_baseline.param_counts(model.get_weights())
    return {
        "method": method,
        **extra,
        "accuracy": 100.0 * float(np.mean(np.argmax(logits, axis=-1) == data[3])),
        **tfmot_baseline.filter_stats({n: keras.ops.convert_to_numpy(model.get_layer(n).kernel) for n in LAYERS}),
        "nonzero_params": nonzero,
        "params": total,
        "latency_ms": tfmot_baseline.median_latency_ms(model.predict_on_batch, INPUT_SHAPE,
                                                       repeats=args.latency_repeats),
        "train_s": train_s,
    }


# -- the methods ----------------------------------------------------------------------------------------
def run_admm(penalty, mu, dense_weights, data, args):
    model = _model(args, dense_weights)
    admm = ADMM(penalty, mu=mu, rho=args.rho, block="filter", layers=LAYERS, update_every=1, guard=args.guard)
    start = time.perf_counter()
    _fit(model, data, args, args.admm_epochs, [admm])
    admm.finalize()
    _fit(model, data, args, args.finetune_epochs)
    return measure(model, data, args, f"admm_{penalty}", time.perf_counter() - start, mu=mu)


def matching_tau(model, removed_fraction):
    """The filter-norm threshold that zeroes ``removed_fraction`` of the sparsified layers' filters."""
    norms = []
    for name in LAYERS:
        kernel = keras.ops.convert_to_numpy(model.get_layer(name).kernel)
        axes = tuple(range(kernel.ndim - 2)) if kernel.ndim > 2 else (0,)
        norms.append(np.sqrt(np.sum(np.square(kernel), axis=axes)).ravel())
    norms = np.sort(np.concatenate(norms))
    count = int(round(removed_fraction * norms.size))
    return float(norms[count - 1]) if count else 0.0


def run_group_lasso(dense_weights, removed_fraction, data, args):
    model = _model(args, dense_weights)
    regularize(model, FilterGroupLasso(args.gl_strength), where=LAYERS)
    start = time.perf_counter()
    _fit(model, data, args, args.admm_epochs)
    tau = args.tau if args.tau is not None else matching_tau(model, removed_fraction)
    masks = prune.threshold(model, tau, scheme="filter", where=LAYERS)
    # Fine-tune a penalty-free copy: the group lasso would keep shrinking the surviving filters.
    tuned = _model(args, model.get_weights())
    masking.install_masks(tuned, masks)
    _fit(tuned, data, args, args.finetune_epochs)
    return measure(tuned, data, args, "group_lasso", time.perf_counter() - start, strength=args.gl_strength, tau=tau)


def run_tfmot(dense_weights, dense_model, target_sparsity, data, args):
    """Runs ``benchmarks.tfmot_baseline`` in a legacy-Keras process on the same data and dense weights."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "inputs.npz")
        named, index = {}, 0
        for layer in dense_model.layers:
            for i, _ in enumerate(layer.weights):
                named[f"w:{layer.name}:{i}"] = dense_weights[index]
                index += 1
        np.savez(path, x_train=data[0], y_train=data[1], x_test=data[2], y_test=data[3], **named)
        result, error = tfmot_baseline.run_legacy_keras("benchmarks.tfmot_baseline", [
            "--data", path, "--target_sparsity", repr(target_sparsity),
            "--epochs", str(args.admm_epochs + args.finetune_epochs), "--batch_size", str(args.batch_size),
            "--learning_rate", repr(args.learning_rate), "--latency_repeats", str(args.latency_repeats)])
    if error:
        raise RuntimeError(f"tfmot baseline failed ({error})")
    return result


def run(args):
    keras.utils.set_random_seed(args.seed)
    data = load_fashion_mnist(args.train_examples, args.test_examples)
    dense = _model(args)
    start = time.perf_counter()
    _fit(dense, data, args, args.epochs)
    rows = [measure(dense, data, args, "dense", time.perf_counter() - start)]
    dense_weights = dense.get_weights()
    # The sparse methods train admm_epochs + finetune_epochs more epochs than the pre-trained dense model:
    # a dense model trained as long tells what those epochs alone are worth (the fair reference).
    longer = _model(args, dense_weights)
    start = time.perf_counter()
    _fit(longer, data, args, args.admm_epochs + args.finetune_epochs)
    dense_long = measure(longer, data, args, "dense_long", time.perf_counter() - start,
                         epochs=args.epochs + args.admm_epochs + args.finetune_epochs)
    admm_rows = {p: [run_admm(p, mu, dense_weights, data, args) for mu in mus]
                 for p, mus in (("l0", args.mus), ("l1", args.l1_mus))}
    reference = admm_rows["l0"][0]
    rows += [dense_long] + admm_rows["l0"] + admm_rows["l1"]
    rows.append(run_group_lasso(dense_weights, reference["filters_removed_pct"] / 100, data, args))
    if not args.skip_tfmot:
        rows.append(run_tfmot(dense_weights, dense, reference["weight_sparsity"], data, args))
    # The paper's reference is the pre-trained dense model; "passed_long" holds the same test against the
    # dense model trained as many epochs as the sparse ones.
    for row in rows[2:]:
        removed = row["filters_removed_pct"] >= TARGET_REMOVED_PCT
        row["passed"] = bool(removed and row["accuracy"] >= rows[0]["accuracy"] - TARGET_ACCURACY_DROP)
        row["passed_long"] = bool(removed and row["accuracy"] >= dense_long["accuracy"] - TARGET_ACCURACY_DROP)
    config = {k: v for k, v in vars(args).items() if k != "output"}
    return {"backend": keras.backend.backend(), "config": config, "layers": LAYERS, "rows": rows,
            "reference": {"mu": reference["mu"], "weight_sparsity": reference["weight_sparsity"],
                          "filters_removed_pct": reference["filters_removed_pct"]},
            "target": f">= {TARGET_REMOVED_PCT:g}% filters removed within {TARGET_ACCURACY_DROP} points of dense",
            "latency_note": LATENCY_NOTE}


def format_report(result):
    header = (f"{'method':<12} {'mu':>7} {'acc %':>6} {'filters 0':>16} {'removed':>8} {'w-sparse':>8} "
              f"{'nonzero/params':>17} {'ms b1':>7} {'ms b64':>7}  target (vs dense, vs dense_long)")
    lines = [f"admm_cnn on Fashion-MNIST ({result['config']['train_examples']} train, "
             f"{result['config']['test_examples']} test examples), layers {', '.join(result['layers'])}", header]
    for row in result["rows"]:
        mu = f"{row['mu']:g}" if "mu" in row else "-"
        verdict = "-" if "passed" not in row else " / ".join(
            "PASS" if row[key] else "FAIL" for key in ("passed", "passed_long"))
        lines.append(
            f"{row['method']:<12} {mu:>7} {row['accuracy']:6.2f} "
            f"{row['zero_filters_total']:>7}/{row['filters_total']:<8} {row['filters_removed_pct']:7.1f}% "
            f"{row['weight_sparsity']:8.3f} {row['nonzero_params']:>8}/{row['params']:<8} "
            f"{row['latency_ms']['1']:7.2f} {row['latency_ms']['64']:7.2f}  {verdict}")
    for row in result["rows"][2:]:
        per_layer = ", ".join(f"{n} {v['zero']}/{v['filters']}" for n, v in row["zero_filters"].items())
        lines.append(f"  zero filters {row['method']}{'' if 'mu' not in row else ' mu=%g' % row['mu']}: {per_layer}")
    lines.append(f"target: {result['target']}; tfmot/group lasso matched to ADMM-l0 mu={result['reference']['mu']:g} "
                 f"(weight sparsity {result['reference']['weight_sparsity']:.3f})")
    lines.append(f"latency: median predict_on_batch on CPU; {LATENCY_NOTE}")
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    result = run(args)
    print(format_report(result))
    if args.output:
        files.write_text(args.output, json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])

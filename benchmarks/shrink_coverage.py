"""Coverage of coupled-group shrinking over every ``keras.applications`` constructor.

For each constructor (``weights=None``, 10 classes, the smallest input it accepts among 32, 75, 96, 128
and 224): random BatchNormalization statistics (so a dropped channel that is not a zero constant would
show), :func:`sparse_keras.structure.coupled_groups`, a random 30-50 % of each layer's prunable coupled
groups zeroed with every slice (``sparse_keras.structure.zero_coupled_groups``), ``shrink``, and
the checks: outputs equal (max difference <= 1e-4 x the largest output), the ``.keras`` round trip of the
shrunk model gives the same outputs, and ``model.export`` (TensorFlow backend). Goal: >= 95 % of the
constructors pass (Torch-Pruning prunes 95.3 % of torchvision's models).

Run::

  KERAS_BACKEND=tensorflow python -m benchmarks.shrink_coverage                     # all 40 (10 s to 4 min each on 2 cores)
  KERAS_BACKEND=tensorflow python -m benchmarks.shrink_coverage --models MobileNetV2,ResNet50
  KERAS_BACKEND=tensorflow python -m benchmarks.shrink_coverage --skip_large --out /tmp/coverage.md

``--skip_large`` leaves out the slowest constructors (ConvNeXtLarge/XLarge, EfficientNetV2L/M/B7,
NASNetLarge, ...), which take minutes each on a 2-core CPU.
"""

import argparse
import inspect
import json
import os
import sys
import tempfile
import time
import traceback

import keras
import numpy as np

from sparse_keras import analysis, structure
from sparse_keras.shrinking import shrink

SIZES = (32, 75, 96, 128, 224)
LARGE = (
    "ConvNeXtLarge", "ConvNeXtXLarge", "EfficientNetB6", "EfficientNetB7", "EfficientNetV2L", "EfficientNetV2M",
    "NASNetLarge", "ResNet152", "ResNet152V2", "InceptionResNetV2", "DenseNet201", "ConvNeXtBase", "EfficientNetB5",
)


def constructors():
    """``{name: constructor}`` of every model constructor in ``keras.applications``."""
    found = {}
    modules = [keras.applications] + [getattr(keras.applications, n) for n in dir(keras.applications)]
    for module in modules:
        if not inspect.ismodule(module):
            continue
        for name, fn in vars(module).items():
            if name[:1].isupper() and inspect.isfunction(fn) and "weights" in inspect.signature(fn).parameters:
                found[name] = fn
    return dict(sorted(found.items()))


def build(fn):
    errors = []
    for size in SIZES:
        try:
            return fn(weights=None, input_shape=(size, size, 3), classes=10), size
        except (ValueError, TypeError) as error:
            errors.append(f"{size}: {error}")
    raise ValueError("no input size accepted: " + " | ".join(errors))


def randomize(model, rng):
    draws = {"gamma": (0.5, 1.5, "uniform"), "beta": (0, 0.2, "normal"), "moving_mean": (0, 0.2, "normal"), "moving_variance": (0.5, 1.5, "uniform")}
    for layer in model.layers:
        if not isinstance(layer, keras.layers.BatchNormalization):
            continue
        for attr, (a, b, kind) in draws.items():
            variable = getattr(layer, attr, None)  # gamma/beta are None with scale/center off (InceptionV3)
            if variable is not None:
                variable.assign(getattr(rng, kind)(a, b, tuple(variable.shape)).astype("float32"))


def close(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and float(np.abs(a - b).max()) <= 1e-4 * max(float(np.abs(a).max()), 1e-6)


def check(name, fn, seed=0, export=True):
    """One row of the table: a dict with the model, groups, MACs and the verdict."""
    row = {"model": name, "passed": False, "reason": ""}
    start = time.time()
    try:
        rng = np.random.default_rng(seed)
        model, size = build(fn)
        row["input"] = size
        randomize(model, rng)
        groups = structure.coupled_groups(model, unsupported="ignore")
        row.update(groups=len(groups), prunable=len(groups.prunable), unsupported=sorted(groups.unsupported))
        zeroed = structure.zero_coupled_groups(model, float(rng.uniform(0.3, 0.5)), seed=seed, groups=groups)
        row["zeroed"] = len(zeroed)
        x = rng.normal(size=(2, size, size, 3)).astype("float32")
        expected = model.predict_on_batch(x)
        shrunk = shrink(model, warn=False)
        row["macs_before"] = analysis.report(model, tau=0).base_macs
        row["macs_after"] = analysis.report(shrunk, tau=0).base_macs
        row["params_before"], row["params_after"] = model.count_params(), shrunk.count_params()
        if not close(expected, shrunk.predict_on_batch(x)):
            raise AssertionError("shrunk outputs differ")
        if not zeroed:
            raise AssertionError("no prunable coupled group")
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "m.keras")
            shrunk.save(path)
            if not close(expected, keras.saving.load_model(path).predict_on_batch(x)):
                raise AssertionError(".keras round trip changes outputs")
            if export and keras.backend.backend() == "tensorflow":
                shrunk.export(os.path.join(tmp, "saved"), verbose=False)
        row["passed"] = True
    except Exception as error:  # the table records every failure with its reason
        row["reason"] = f"{type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''}"
        row["trace"] = traceback.format_exc(limit=3)
    row["seconds"] = round(time.time() - start, 1)
    keras.backend.clear_session()
    return row


def markdown(rows):
    lines = [
        "| model | input | groups (prunable) | zeroed | MACs before -> after | params before -> after | result | s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        macs = f"{r['macs_before'] / 1e6:.1f}M -> {r['macs_after'] / 1e6:.1f}M" if "macs_after" in r else "-"
        params = f"{r['params_before'] / 1e6:.2f}M -> {r['params_after'] / 1e6:.2f}M" if "params_after" in r else "-"
        verdict = "pass" if r["passed"] else f"FAIL: {r['reason']}"
        lines.append(
            f"| {r['model']} | {r.get('input', '-')} | {r.get('groups', '-')} ({r.get('prunable', '-')}) | {r.get('zeroed', '-')} "
            f"| {macs} | {params} | {verdict} | {r['seconds']} |"
        )
    passed = sum(r["passed"] for r in rows)
    lines += ["", f"{passed} of {len(rows)} constructors pass ({100 * passed / max(len(rows), 1):.1f} %)."]
    return "\n".join(lines) + "\n"


def parse(argv):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.shrink_coverage", description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="", help="comma-separated constructor names (default: all)")
    parser.add_argument("--skip_large", action="store_true", help=f"leave out {', '.join(LARGE)}")
    parser.add_argument("--no_export", action="store_true", help="skip model.export")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="", help="write the markdown table here (and rows as .json beside it)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse(sys.argv[1:] if argv is None else argv)
    available = constructors()
    names = [n.strip() for n in args.models.split(",") if n.strip()] or list(available)
    unknown = sorted(set(names) - set(available))
    if unknown:
        raise SystemExit(f"--models: unknown constructors {unknown}; available: {', '.join(available)}")
    if args.skip_large:
        names = [n for n in names if n not in LARGE]
    rows = []
    for name in names:
        row = check(name, available[name], args.seed, export=not args.no_export)
        print(f"{name}: {'pass' if row['passed'] else 'FAIL ' + row['reason']} ({row['seconds']} s)", flush=True)
        rows.append(row)
        if args.out:  # partial results survive an interrupted run
            with open(args.out, "w") as f:
                f.write(markdown(rows))
            with open(os.path.splitext(args.out)[0] + ".json", "w") as f:
                json.dump([{k: v for k, v in r.items() if k != "trace"} for r in rows], f, indent=1)
    print(markdown(rows))
    return rows


if __name__ == "__main__":
    main()

"""Every GPU target of the project in one run, one table with PASS/FAIL per target (JAX backend only).

Rows: training and inference images/s of LST-Net ResNet-20/56, SDNet-18, SDNet-18-All and the plain CIFAR
ResNet-18, each in float32 and ``mixed_bfloat16``; the regularizer overhead (``benchmarks.regularizer_overhead``)
and the ADMM overhead (``benchmarks.admm_overhead``), run through those modules. With ``--peer-dir`` (a folder
holding the papers' official PyTorch code as ``lst-net-cifar/`` and ``sdnet/``) and an importable ``torch``,
``benchmarks.official_torch_speed`` times the official models in a separate process and the table gets
ours / official ratios.

Targets (fp32, batch 128, 32x32x3, judged on a GPU only): LST-Net ResNet-20 trains and infers at >= 9,600
images/s and ResNet-56 at >= 3,800 (Li et al. 2020's official code on an H100, times two), SDNet-18 trains at
>= 20,000 images/s (Li et al. 2022's official code, 8,300, times 2.5) and at >= 0.9x our ResNet-18; the
regularizer step-time ratio <= 1.03 on a GPU; the ADMM epoch-time ratio <= 1.05. The bfloat16 rows, ResNet-18
and SDNet-18-All are reported without a target.

Run::

  make bench-gpu                                                           # the GPU machine, < 8 min
  KERAS_BACKEND=jax python -m benchmarks.gpu_suite --out runs/gpu_suite --peer-dir .peer
  KERAS_BACKEND=jax python -m benchmarks.gpu_suite --quick                 # CPU smoke run, no meaning

Method: a throughput row builds the model under the precision policy, compiles it (SGD momentum 0.9, the
model's own sparse cross-entropy on logits, ``jit_compile=True``), warms up with ``train_on_batch`` /
``predict_on_batch`` (which compiles the very step ``model.fit`` runs), then calls that compiled step
``--steps`` times back to back on one device-resident batch, blocks until the last result is ready and
reads the clock; the rate is ``batch / median seconds per step`` over ``--windows`` such windows. No host
round trip per step, as in ``fit``, and no input pipeline. Needs no TensorFlow (the GPU machine has none).
"""

import argparse
import dataclasses
import datetime
import gc
import json
import os
import pathlib
import platform
import shlex
import statistics
import subprocess
import sys
import time

import keras
import numpy as np

from benchmarks import admm_overhead, lst_speed, regularizer_overhead
from benchmarks.regularizer_overhead import _positive_int, describe_device
from sparse_keras import models

MODELS = ("lstnet_resnet20", "lstnet_resnet56", "sdnet18", "sdnet18_all", "resnet18_cifar")
PRECISIONS = ("float32", "mixed_bfloat16")
# images/s; fp32 only. LST-Net: lst_speed's figures (twice the official code on an H100); SDNet-18: 2.5x the
# official 8,300 images/s, rounded down as Li et al. 2022's speed goal states it.
TARGETS = {
    ("lstnet_resnet20", "train"): lst_speed.TARGET_FACTOR * lst_speed.OFFICIAL_H100["lstnet_resnet20"],
    ("lstnet_resnet20", "infer"): lst_speed.TARGET_FACTOR * lst_speed.OFFICIAL_H100["lstnet_resnet20"],
    ("lstnet_resnet56", "train"): lst_speed.TARGET_FACTOR * lst_speed.OFFICIAL_H100["lstnet_resnet56"],
    ("lstnet_resnet56", "infer"): lst_speed.TARGET_FACTOR * lst_speed.OFFICIAL_H100["lstnet_resnet56"],
    ("sdnet18", "train"): 20_000,
}
SDNET_VS_RESNET = 0.9  # SDNet-18 training images/s over our ResNet-18's, fp32
FULL = {"train_batch": 128, "infer_batch": 512, "steps": 20, "windows": 3, "warmup": 2,
        "regularizer": ["--steps", "20", "--rounds", "10", "--warmup", "2"],
        "admm": ["--examples", "8192", "--rounds", "4"]}
QUICK = {"train_batch": 2, "infer_batch": 4, "steps": 1, "windows": 2, "warmup": 1,
         "regularizer": ["--quick"], "admm": ["--quick"]}


@dataclasses.dataclass
class Row:
    """One measured quantity; ``target`` and ``verdict`` are None when it has none."""

    name: str
    value: float
    unit: str
    target: str = None  # e.g. ">= 9,600"
    verdict: str = None  # "PASS", "FAIL", or "not judged (...)"
    official: float = None  # the official PyTorch code's value, same machine
    note: str = ""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_suite", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="runs/gpu_suite", help="folder for gpu_suite.md and gpu_suite.json")
    parser.add_argument("--peer-dir", default=None, help="folder with lst-net-cifar/ and sdnet/ (official code)")
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated subset of {MODELS}")
    parser.add_argument("--precisions", default=",".join(PRECISIONS), help=f"subset of {PRECISIONS}")
    parser.add_argument("--skip-overheads", action="store_true", help="leave out the regularizer and ADMM rows")
    parser.add_argument("--quick", action="store_true", help=f"CPU smoke run with {QUICK}")
    args = parser.parse_args(argv)
    args.models = _subset(parser, "--models", args.models, MODELS)
    args.precisions = _subset(parser, "--precisions", args.precisions, PRECISIONS)
    args.sizes = QUICK if args.quick else FULL
    return args


def _subset(parser, flag, text, allowed):
    names = tuple(n for n in text.split(",") if n)
    unknown = [n for n in names if n not in allowed]
    if unknown:
        parser.error(f"{flag} has unknown names {unknown}; allowed: {allowed}")
    return names


def throughput(name, precision, sizes, input_shape=(32, 32, 3)):
    """(train images/s, inference images/s) of ``models.get(name)`` under ``precision``."""
    import jax  # the suite is JAX-only; imported here so that the module imports on any backend

    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(precision)
    try:
        keras.utils.set_random_seed(0)
        model = models.get(name, num_classes=10, input_shape=input_shape)
        model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=True)
        rng = np.random.default_rng(0)
        x_train = jax.device_put(rng.normal(size=(sizes["train_batch"], *input_shape)).astype("float32"))
        y_train = jax.device_put(rng.integers(0, 10, size=(sizes["train_batch"],)).astype("int32"))
        x_infer = jax.device_put(rng.normal(size=(sizes["infer_batch"], *input_shape)).astype("float32"))
        train_s = time_train_step(model, x_train, y_train, sizes)
        infer_s = time_predict_step(model, x_infer, sizes)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    del model
    keras.backend.clear_session()
    gc.collect()
    return sizes["train_batch"] / statistics.median(train_s), sizes["infer_batch"] / statistics.median(infer_s)


def time_train_step(model, x, y, sizes):
    """Seconds per step of each window, running the compiled step of ``fit`` back to back."""
    for _ in range(sizes["warmup"]):
        model.train_on_batch(x, y)  # builds and compiles model.train_function
    groups = (model.trainable_variables, model.non_trainable_variables, model.optimizer.variables,
              model.metrics_variables)
    state = tuple([v.value for v in group] for group in groups)
    windows = []
    for _ in range(sizes["windows"]):
        start = time.perf_counter()
        for _ in range(sizes["steps"]):
            _, state = model.train_function(state, iter([(x, y, None)]))
        _block(state)
        windows.append((time.perf_counter() - start) / sizes["steps"])
    _write_back(groups, state)  # the step donates its input state: hand the live values back to the model
    return windows


def time_predict_step(model, x, sizes):
    """Seconds per call of each window, running the compiled step of ``predict`` back to back."""
    for _ in range(sizes["warmup"]):
        model.predict_on_batch(x)
    groups = (model.trainable_variables, model.non_trainable_variables)
    state = tuple([v.value for v in group] for group in groups)
    windows = []
    for _ in range(sizes["windows"]):
        start = time.perf_counter()
        for _ in range(sizes["steps"]):
            outputs, state = model.predict_function(state, iter([(x,)]))
        _block(outputs)
        windows.append((time.perf_counter() - start) / sizes["steps"])
    _write_back(groups, state)
    return windows


def _block(tree):
    import jax

    jax.block_until_ready(tree)


def _write_back(groups, state):
    for group, values in zip(groups, state):
        for variable, value in zip(group, values):
            variable.assign(value)


def verdict(value, target, higher_is_better=True, judged=True, why="not a GPU"):
    """"PASS"/"FAIL" of ``value`` against ``target``, or a "not judged" note."""
    if not judged:
        return f"not judged ({why})"
    return "PASS" if (value >= target if higher_is_better else value <= target) else "FAIL"


def throughput_rows(args, precision, judged, why, save):
    """The rows of every model in ``precision``; ``save(rows)`` after each model keeps a partial table."""
    rows, rates = [], {}
    for name in args.models:
        started = time.perf_counter()
        train, infer = throughput(name, precision, args.sizes)
        rates[name] = (train, infer)
        note = f"{time.perf_counter() - started:.0f} s incl. compile"
        for phase, value in (("train", train), ("infer", infer)):
            target = TARGETS.get((name, phase)) if precision == "float32" else None
            batch = args.sizes["train_batch" if phase == "train" else "infer_batch"]
            rows.append(Row(f"{name} {precision} {phase} (batch {batch})", value, "images/s",
                            None if target is None else f">= {target:,.0f}",
                            None if target is None else verdict(value, target, judged=judged, why=why), note=note))
        print(f"  {name} {precision}: train {train:,.1f} images/s, inference {infer:,.1f} images/s ({note})",
              flush=True)
        save(rows)
    if precision == "float32" and "sdnet18" in rates and "resnet18_cifar" in rates:
        ratio = rates["sdnet18"][0] / rates["resnet18_cifar"][0]
        rows.append(Row("sdnet18 / resnet18_cifar float32 train", ratio, "x", f">= {SDNET_VS_RESNET}",
                        verdict(ratio, SDNET_VS_RESNET, judged=judged, why=why)))
    return rows


def overhead_rows(args, judged, why):
    reg = regularizer_overhead.run(regularizer_overhead.parse_args(args.sizes["regularizer"]))
    gpu_target = regularizer_overhead.TARGETS["gpu"]
    rows = [Row(f"regularizer overhead ({reg.model}, NestedHalfRing, batch {reg.batch_size})", reg.ratio, "x",
                f"<= {gpu_target}", verdict(reg.ratio, gpu_target, higher_is_better=False, judged=judged, why=why),
                note=f"{statistics.median(reg.plain_ms):.2f} -> {statistics.median(reg.regularized_ms):.2f} ms/step")]
    admm = admm_overhead.run(admm_overhead.parse_args(args.sizes["admm"]))
    rows.append(Row(f"ADMM overhead ({admm['model']}, l0, epoch of {admm['examples']})", admm["ratio"], "x",
                    f"<= {admm_overhead.TARGET}",
                    verdict(admm["ratio"], admm_overhead.TARGET, higher_is_better=False, judged=judged, why=why),
                    note=f"{admm['plain_s']:.3f} -> {admm['admm_s']:.3f} s/epoch"))
    return rows


def peer_rows(args):
    """Runs benchmarks.official_torch_speed in its own process; returns its JSON, or None with a message."""
    command = [sys.executable, "-m", "benchmarks.official_torch_speed", "--peer-dir", args.peer_dir,
               "--models", ",".join(m for m in args.models if m != "resnet18_cifar"),
               "--precisions", ",".join(args.precisions),
               "--train-batch", str(args.sizes["train_batch"]), "--infer-batch", str(args.sizes["infer_batch"]),
               "--steps", str(args.sizes["steps"]), "--windows", str(args.sizes["windows"]),
               "--warmup", str(args.sizes["warmup"])]
    print("official code:", shlex.join(command), flush=True)
    timeout = 900 if args.quick else 300  # a CPU runs the official code slowly; a GPU within the 8 minutes
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        print(f"official code: timed out after {timeout} s, no peer rows", flush=True)
        return None
    sys.stdout.write(done.stderr[-4000:])
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        print(f"official code: exit {done.returncode}, no peer rows", flush=True)
        return None
    result = json.loads(lines[-1])
    for message in result.get("skipped", []):
        print("official code:", message, flush=True)
    return result


def attach_peer(rows, peer):
    """Fills ``Row.official`` from the peer's {"name precision phase": images/s}."""
    for row in rows:
        if row.unit == "images/s":
            key = " ".join(row.name.split()[:3])
            row.official = peer["rates"].get(key)


def environment(args):
    import jax

    device, device_type = describe_device()
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "device": jax.devices()[0].device_kind, "device_type": device_type, "device_description": device,
        "backend": keras.backend.backend(), "keras": keras.__version__, "jax": jax.__version__,
        "numpy": np.__version__, "python": platform.python_version(), "quick": args.quick,
        "sizes": {k: v for k, v in args.sizes.items() if not isinstance(v, list)},
    }


def format_markdown(env, rows, peer, command):
    lines = [
        "# GPU suite", "",
        f"- command: `{command}`",
        f"- date: {env['date']}; device: {env['device']} ({env['device_description']})",
        f"- keras {env['keras']} ({env['backend']} backend), jax {env['jax']}, numpy {env['numpy']}, "
        f"python {env['python']}",
        f"- sizes: {env['sizes']}" + ("; QUICK smoke run: the figures mean nothing" if env["quick"] else ""),
    ]
    if peer:
        lines.append(f"- official code: torch {peer['torch']} on {peer['device']}; bf16 rows use torch.autocast")
    lines += ["", "| row | value | target | verdict | official PyTorch | ours / official | note |",
              "|---|---:|---|---|---:|---:|---|"]
    for row in rows:
        value = f"{row.value:,.1f} {row.unit}" if row.unit == "images/s" else f"{row.value:.3f}{row.unit}"
        official = "-" if row.official is None else f"{row.official:,.1f}"
        ratio = "-" if not row.official else f"{row.value / row.official:.2f}x"
        lines.append(f"| {row.name} | {value} | {row.target or '-'} | {row.verdict or 'reported'} | {official} | "
                     f"{ratio} | {row.note} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    """Runs the targets first (fp32 rows, overheads), then the reported-only bfloat16 rows and the official
    code, saving the table after every model so that a run cut short still leaves its rows."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if keras.backend.backend() != "jax":
        raise SystemExit(f"the GPU suite runs on the JAX backend; set KERAS_BACKEND=jax (got "
                         f"{keras.backend.backend()!r})")
    started = time.perf_counter()
    env = environment(args)
    judged = env["device_type"] == "gpu" and not args.quick
    why = "quick run" if args.quick else "not a GPU"
    command = f"KERAS_BACKEND=jax python -m benchmarks.gpu_suite {shlex.join(argv)}".rstrip()
    print(f"GPU suite on {env['device']} ({env['device_description']}), quick={args.quick}", flush=True)
    rows, peer = [], None

    def save(new_rows=(), final=False):
        env["seconds"] = round(time.perf_counter() - started, 1)
        status = f"Total {env['seconds']:.0f} s." if final else f"PARTIAL: {env['seconds']:.0f} s so far."
        markdown = format_markdown(env, rows + list(new_rows), peer, command) + f"\n{status}\n"
        out = pathlib.Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "gpu_suite.md").write_text(markdown)
        (out / "gpu_suite.json").write_text(json.dumps({"environment": env, "complete": final, "official": peer,
                                                        "rows": [dataclasses.asdict(r) for r in rows + list(new_rows)]},
                                                       indent=1))
        return markdown

    for precision in sorted(args.precisions, key=lambda p: p != "float32"):
        rows += throughput_rows(args, precision, judged, why, save)
        if precision == "float32" and not args.skip_overheads:
            rows += overhead_rows(args, judged, why)
            save()
    if not args.skip_overheads and "float32" not in args.precisions:
        rows += overhead_rows(args, judged, why)
    peer = peer_rows(args) if args.peer_dir else None
    if peer:
        attach_peer(rows, peer)
    print(save(final=True))
    print(f"wrote {args.out}/gpu_suite.md and {args.out}/gpu_suite.json")
    return rows


if __name__ == "__main__":
    main()

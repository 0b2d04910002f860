"""Ours on TensorFlow and on JAX against the papers' official PyTorch code, side by side on one CPU.

Seven rows (issue 18): ResNet-20, LST-Net ResNet-20, ResNet-56, LST-Net ResNet-56, the CIFAR ResNet-18,
SDNet-18 and SDNet-18-All; training and inference images/s at one batch (64) of 32x32x3 fp32 noise, SGD
momentum 0.9. Goals: our TF training and inference >= 1.0x the official code on every row; our JAX path
>= 0.8x our TF path (training and inference).

Run::

  make install-torch    # the official code's torch, numpy and yacs in a separate virtualenv (.venv-torch)
  python -m benchmarks.cpu_vs_official --peer-dir ../shared/peer --torch-python .venv-torch/bin/python
  python -m benchmarks.cpu_vs_official --quick --rows resnet20            # smoke run, no meaning

Method: three worker processes (``benchmarks.step_server``): the official code through
``benchmarks.official_torch_speed --serve`` (``torch.set_num_threads(--threads)``) and ours through
``benchmarks.keras_step_worker`` with ``KERAS_BACKEND=tensorflow`` and ``=jax``. Row by row, every worker
builds the model, counts its trainable parameters (the table flags a row whose counts differ) and warms up
(the first step compiles); then ``--rounds`` rounds, each timing one window of
training and one of inference on every framework in turn, the order rotating every round, so drift on a
shared machine hits all frameworks alike. A window is as many back-to-back steps as fill ``--window-s``
seconds by the warm-up estimate (at least one). A rate is batch / the median over rounds of seconds per
step; a ratio is the median of the per-round ratios. Without ``--peer-dir`` or a working torch the
official worker is left out with a message and ours are timed alone.

Writes ``cpu_vs_official.md`` and ``cpu_vs_official.json`` under ``--out``, worker logs beside them.
"""

import argparse
import datetime
import json
import os
import pathlib
import platform
import shlex
import statistics
import subprocess
import sys
import time

from benchmarks import step_server
from benchmarks.step_server import PHASES
from sparse_keras.utils import files

ROWS = ("resnet20", "lstnet_resnet20", "resnet56", "lstnet_resnet56", "resnet18_cifar", "sdnet18", "sdnet18_all")
LABELS = {"resnet20": "ResNet-20", "lstnet_resnet20": "LST-Net ResNet-20", "resnet56": "ResNet-56",
          "lstnet_resnet56": "LST-Net ResNet-56", "resnet18_cifar": "ResNet-18 (CIFAR)", "sdnet18": "SDNet-18",
          "sdnet18_all": "SDNet-18-All"}
# Which official code each row's peer is (benchmarks.official_torch_speed says how it is built).
OFFICIAL_SOURCE = {"resnet20": "SDNet's BasicBlock in He et al.'s CIFAR layout (no official plain ResNet-20)",
                   "resnet56": "SDNet's BasicBlock in He et al.'s CIFAR layout (no official plain ResNet-56)",
                   "resnet18_cifar": "SDNet's Lib/models/resnet.py ResNet18",
                   "lstnet_resnet20": "LST-Net's resnet20_lst_cifar", "lstnet_resnet56": "LST-Net's resnet56_lst_cifar",
                   "sdnet18": "SDNet's SDNet18",
                   "sdnet18_all": "SDNet's SDNet18_all, no shortcuts as its CIFAR config; ours with shortcut=False"}
FRAMEWORKS = ("official", "tf", "jax")
GOALS = {"tf/official": 1.0, "jax/tf": 0.8}  # ratio >= goal, training and inference alike
FULL = {"batch": 64, "rounds": 5, "warmup": 2, "window_s": 2.0}
QUICK = {"batch": 4, "rounds": 2, "warmup": 1, "window_s": 0.0}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cpu_vs_official", description=__doc__.split("\n")[0])
    parser.add_argument("--peer-dir", default=None, help="folder with the official lst-net-cifar/ and sdnet/")
    parser.add_argument("--torch-python", default=None,
                        help="a Python with torch, numpy and yacs (default: .venv-torch/bin/python if present)")
    parser.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated subset of {ROWS}")
    parser.add_argument("--frameworks", default=",".join(FRAMEWORKS), help=f"subset of {FRAMEWORKS}")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads for the peer")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--window-s", type=float, default=None, help="seconds one timed window aims at")
    parser.add_argument("--out", default="runs/cpu_vs_official", help="folder for the table, JSON and logs")
    parser.add_argument("--quick", action="store_true", help=f"smoke run with {QUICK}")
    args = parser.parse_args(argv)
    args.rows = _subset(parser, "--rows", args.rows, ROWS)
    args.frameworks = _subset(parser, "--frameworks", args.frameworks, FRAMEWORKS)
    for flag, value in (("--threads", args.threads), ("--rounds", args.rounds)):
        if value is not None and value < 1:
            parser.error(f"{flag} must be a positive integer; got {value}")
    args.sizes = dict(QUICK if args.quick else FULL)
    if args.rounds is not None:
        args.sizes["rounds"] = args.rounds
    if args.window_s is not None:
        if args.window_s < 0:
            parser.error(f"--window-s must be >= 0; got {args.window_s}")
        args.sizes["window_s"] = args.window_s
    if args.peer_dir is not None and not (pathlib.Path(args.peer_dir) / "lst-net-cifar").is_dir():
        parser.error(f"--peer-dir {args.peer_dir!r} has no lst-net-cifar/ folder (the official code)")
    if args.torch_python is None and pathlib.Path(".venv-torch/bin/python").exists():
        args.torch_python = ".venv-torch/bin/python"
    return args


def _subset(parser, flag, text, allowed):
    names = tuple(n for n in text.split(",") if n)
    unknown = [n for n in names if n not in allowed]
    if unknown or not names:
        parser.error(f"{flag} has unknown names {unknown} or none; allowed: {allowed}")
    return names


def official_unavailable(args):
    """Why the official worker cannot run (a message), or None when it can."""
    if "official" not in args.frameworks:
        return "not asked for (--frameworks)"
    if args.peer_dir is None:
        return "no --peer-dir (the folder with the official lst-net-cifar/ and sdnet/)"
    python = args.torch_python or sys.executable
    probe = subprocess.run([python, "-c", "import torch, yacs"], capture_output=True, text=True)
    if probe.returncode:
        return (f"{python} cannot import torch and yacs ({probe.stderr.strip().splitlines()[-1:]}); "
                "run `make install-torch` and pass --torch-python .venv-torch/bin/python")
    return None


def worker_commands(args):
    """{framework: (command, extra environment)} of the workers to start."""
    batch, warmup = str(args.sizes["batch"]), str(args.sizes["warmup"])
    commands = {}
    if "official" in args.frameworks and not args.official_missing:
        commands["official"] = ([args.torch_python or sys.executable, "-m", "benchmarks.official_torch_speed",
                                 "--serve", "--peer-dir", str(pathlib.Path(args.peer_dir).resolve()),
                                 "--threads", str(args.threads), "--train-batch", batch, "--infer-batch", batch,
                                 "--warmup", warmup], {"OMP_WAIT_POLICY": omp_wait_policy()})
    ours = [sys.executable, "-m", "benchmarks.keras_step_worker", "--batch", batch, "--warmup", warmup]
    for framework, backend in (("tf", "tensorflow"), ("jax", "jax")):
        if framework in args.frameworks:
            commands[framework] = (ours, {"KERAS_BACKEND": backend})
    return commands


def omp_wait_policy():
    """The official worker's OpenMP wait policy: the caller's, else PASSIVE.

    torch's OpenMP threads spin at barriers by default; on a machine shared with other jobs a spinning
    thread keeps losing its time slice to them, and torch collapses (measured on 2 loaded cores, ResNet-20
    training: 12-20 images/s with the default, up to 176 with PASSIVE, 50-64 with one thread; RESULTS.md).
    TensorFlow and XLA use their own thread pools, not OpenMP. Set OMP_WAIT_POLICY=ACTIVE to time torch's
    default on a quiet machine.
    """
    return os.environ.get("OMP_WAIT_POLICY", "PASSIVE")


def steps_for(estimate_s, window_s):
    """Back-to-back steps in one window: enough to fill ``window_s`` by the warm-up estimate, at least 1."""
    return max(1, round(window_s / max(estimate_s, 1e-6)))


def measure_row(row, workers, sizes, log=print):
    """{"params": {fw: n}, "seconds": {fw: {phase: [per round]}}} of one row, rounds interleaved."""
    params, steps, seconds = {}, {}, {}
    for framework, worker in workers.items():
        reply = worker.request("prepare", row)
        params[framework] = reply["params"]
        steps[framework] = {phase: steps_for(reply["estimate_s"][phase], sizes["window_s"]) for phase in PHASES}
        seconds[framework] = {phase: [] for phase in PHASES}
        log(f"  {row}: {framework} built in {reply['prepare_s']:.0f} s, {reply['params']:,} trainable parameters, "
            f"windows of {steps[framework]['train']} / {steps[framework]['infer']} steps")
    order = list(workers)
    for round_index in range(sizes["rounds"]):
        rotated = order[round_index % len(order):] + order[:round_index % len(order)]
        for framework in rotated:
            for phase in PHASES:
                reply = workers[framework].request("time", row, phase=phase, steps=steps[framework][phase])
                seconds[framework][phase].append(reply["seconds_per_step"])
        log(f"  {row} round {round_index + 1}: " + ", ".join(
            f"{fw} {sizes['batch'] / seconds[fw]['train'][-1]:.1f} / {sizes['batch'] / seconds[fw]['infer'][-1]:.1f}"
            for fw in order) + " images/s (train / infer)")
    for worker in workers.values():
        worker.request("drop", row)
    return {"params": params, "seconds": seconds}


def summarize(row, measured, batch):
    """Rates (images/s, median over rounds), per-round-median ratios and verdicts of one measured row."""
    seconds = measured["seconds"]
    summary = {"row": row, "label": LABELS[row], "params": measured["params"],
               "params_equal": len(set(measured["params"].values())) <= 1, "rates": {}, "ratios": {}, "verdicts": {}}
    for framework, phases in seconds.items():
        summary["rates"][framework] = {phase: batch / statistics.median(values) for phase, values in phases.items()}
    for goal, threshold in GOALS.items():
        top, bottom = goal.split("/")
        if top not in seconds or bottom not in seconds:
            continue
        for phase in PHASES:
            # The ratio of speeds is the inverse ratio of the seconds measured in the same round.
            ratio = statistics.median(b / t for t, b in zip(seconds[top][phase], seconds[bottom][phase]))
            summary["ratios"][f"{goal} {phase}"] = ratio
            summary["verdicts"][f"{goal} {phase}"] = "PASS" if ratio >= threshold else "FAIL"
    return summary


def render(summaries, meta):
    """The markdown report: one line per row, rates then ratios with PASS/FAIL."""
    frameworks = [fw for fw in FRAMEWORKS if any(fw in s["rates"] for s in summaries)]
    names = {"official": "official PyTorch", "tf": "ours, TF", "jax": "ours, JAX"}
    header = (["model", "trainable params"] + [f"{names[fw]} train / infer" for fw in frameworks]
              + [f"{goal} train / infer (goal >= {threshold})" for goal, threshold in GOALS.items()
                 if all(fw in frameworks for fw in goal.split("/"))])
    lines = [f"# Ours vs the official code on CPU ({meta['date']})", "",
             f"Machine: {meta['machine']}. Command: `{meta['command']}`.",
             f"Batch {meta['sizes']['batch']}, 32x32x3 fp32, SGD momentum 0.9; {meta['sizes']['rounds']} interleaved "
             "rounds; images/s are batch / median seconds per step, ratios the median of per-round ratios.", ""]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for s in summaries:
        params = ", ".join(f"{s['params'][fw]:,}" for fw in frameworks if fw in s["params"])
        cells = [s["label"], params if s["params_equal"] else f"DIFFER: {params}"]
        cells += [f"{s['rates'][fw]['train']:,.1f} / {s['rates'][fw]['infer']:,.1f}" if fw in s["rates"] else "-"
                  for fw in frameworks]
        for goal in GOALS:
            if all(fw in frameworks for fw in goal.split("/")):
                cells.append(" / ".join(f"{s['ratios'][f'{goal} {p}']:.2f}x {s['verdicts'][f'{goal} {p}']}"
                                        if f"{goal} {p}" in s["ratios"] else "-" for p in PHASES))
        lines.append("| " + " | ".join(cells) + " |")
    lines += [""] + [f"- {note}" for note in meta["notes"]]
    return "\n".join(lines) + "\n"


def describe_machine():
    cores = os.cpu_count()
    model = ""
    try:
        model = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{platform.machine()} {model}, {cores} logical CPUs, {platform.system()} {platform.release()}"


def run(args, log=print):
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    notes = []
    args.official_missing = official_unavailable(args)
    if args.official_missing and "official" in args.frameworks:
        log(f"official code left out: {args.official_missing}; timing ours alone")
        notes.append(f"official code left out: {args.official_missing}")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(pathlib.Path.cwd()), os.environ.get("PYTHONPATH")]))}
    workers, logs = {}, []
    try:
        for framework, (command, extra) in worker_commands(args).items():
            logs.append(open(out / f"worker_{framework}.log", "w"))
            log(f"{framework} worker: {shlex.join(command)}")
            workers[framework] = step_server.Worker(framework, command, env={**env, **extra}, log=logs[-1])
        summaries = []
        for row in args.rows:
            started = time.perf_counter()
            summaries.append(summarize(row, measure_row(row, workers, args.sizes, log), args.sizes["batch"]))
            if not summaries[-1]["params_equal"]:
                notes.append(f"{LABELS[row]}: trainable parameter counts differ {summaries[-1]['params']}")
            log(f"  {row} done in {time.perf_counter() - started:.0f} s")
    finally:
        for worker in workers.values():
            worker.close()
        for handle in logs:
            handle.close()
    if "official" in workers:
        notes.append(f"official worker: torch.set_num_threads({args.threads}), OMP_WAIT_POLICY={omp_wait_policy()}")
        notes += [f"{LABELS[row]}: official peer is {OFFICIAL_SOURCE[row]}" for row in args.rows
                  if row in ("resnet20", "resnet56", "sdnet18_all")]
    meta = {"date": datetime.date.today().isoformat(), "machine": describe_machine(), "sizes": args.sizes,
            "command": "python -m benchmarks.cpu_vs_official " + shlex.join(args.argv), "notes": notes}
    report = render(summaries, meta)
    files.write_text(str(out / "cpu_vs_official.md"), report)  # atomic: a killed run leaves the last table whole
    files.write_text(str(out / "cpu_vs_official.json"), json.dumps({"meta": meta, "rows": summaries}, indent=1))
    log(report)
    return summaries


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    args.argv = argv
    return run(args)


if __name__ == "__main__":
    main()

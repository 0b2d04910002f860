"""Timing a framework's training and inference steps in a process of its own, one window per request.

Two frameworks in one process fight over threads (and, on a GPU, memory), and a machine's speed drifts over
minutes; so each framework runs in a worker process that keeps its models built and compiled, and the parent
(``benchmarks.cpu_vs_official``) asks every worker in turn for one timed window, round after round, so that
drift hits every framework alike. Both ends of that protocol live here. No third-party import: the official
PyTorch code's worker runs in a virtual environment with torch and numpy only.

Protocol: one JSON object per line. The parent writes ``{"op": "prepare", "row": NAME}`` (build, count the
trainable parameters, run the warm-up steps), ``{"op": "time", "row": NAME, "phase": "train"|"infer",
"steps": K}`` (seconds per step over K back-to-back steps) and ``{"op": "drop", "row": NAME}``; the worker
answers each with one line starting with ``REPLY_MARK`` (anything else on its stdout, e.g. a library's banner,
is skipped). An answer ``{"error": ...}`` makes the parent raise.
"""

import json
import subprocess
import sys
import time
import traceback

REPLY_MARK = "@@step_server "
PHASES = ("train", "infer")


class Prepared:
    """A built, warmed-up model: ``steps[phase]()`` runs one step; ``finish[phase]()`` waits for the device."""

    def __init__(self, params, steps, finish=None, release=None):
        self.params = int(params)
        self.steps = steps
        self.finish = finish or {}
        self.release = release  # called on drop (e.g. to write donated state back and free memory)


def time_window(prepared, phase, steps):
    """Seconds per step of ``steps`` back-to-back calls, closed by the framework's own synchronization."""
    if phase not in PHASES:
        raise ValueError(f"phase must be one of {PHASES}; got {phase!r}")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer; got {steps!r}")
    step, finish = prepared.steps[phase], prepared.finish.get(phase, lambda: None)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    finish()
    return (time.perf_counter() - start) / steps


def serve(prepare, warmup, stdin=None, stdout=None):
    """The worker's loop: ``prepare(row) -> Prepared``; ``warmup`` untimed steps per phase on prepare."""
    if not isinstance(warmup, int) or warmup < 1:
        raise ValueError(f"warmup must be >= 1 (the first step compiles); got {warmup!r}")
    stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
    models = {}
    for line in stdin:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            op, row = request["op"], request["row"]
            if op == "prepare":
                started = time.perf_counter()
                models[row] = prepare(row)
                # The last warm-up step's time sizes the windows: compilation happens in the first.
                estimate = {}
                for phase in PHASES:
                    for _ in range(warmup):
                        estimate[phase] = time_window(models[row], phase, 1)
                reply = {"params": models[row].params, "estimate_s": estimate,
                         "prepare_s": time.perf_counter() - started}
            elif op == "time":
                reply = {"seconds_per_step": time_window(models[row], request["phase"], request["steps"])}
            elif op == "drop":
                prepared = models.pop(row)
                if prepared.release:
                    prepared.release()
                reply = {}
            else:
                raise ValueError(f"unknown op {op!r}; allowed: prepare, time, drop")
        except Exception as error:  # the parent reports it with the worker's name and the row
            traceback.print_exc(file=sys.stderr)
            reply = {"error": f"{type(error).__name__}: {error}"}
        stdout.write(REPLY_MARK + json.dumps(reply) + "\n")
        stdout.flush()


class Worker:
    """The parent's handle on one worker process (``command`` runs ``serve``); stderr goes to ``log``."""

    def __init__(self, name, command, env=None, log=None, cwd=None):
        self.name = name
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=log or subprocess.DEVNULL, text=True, env=env, cwd=cwd)

    def request(self, op, row, **fields):
        self.process.stdin.write(json.dumps({"op": op, "row": row, **fields}) + "\n")
        self.process.stdin.flush()
        for line in self.process.stdout:
            if line.startswith(REPLY_MARK):
                reply = json.loads(line[len(REPLY_MARK):])
                if "error" in reply:
                    raise RuntimeError(f"{self.name} worker, {op} {row}: {reply['error']}")
                return reply
        raise RuntimeError(f"{self.name} worker exited with code {self.process.wait()} during {op} {row} "
                           "(its log has the traceback)")

    def close(self):
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()

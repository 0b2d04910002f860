"""Measuring what matters: inference latency, and the original-vs-shrunk comparison.

Fewer multiply-adds do not always mean less time (peer tools' users find pruned models no faster); the
comparison report puts the two side by side and warns when the multiply-adds fell but the latency did not.

Runtimes: ``"keras"`` runs the model's compiled predict step on the active backend; ``"tf"`` is the same on
the TensorFlow backend only (so a table labelled "tf" is TensorFlow); ``"tflite"`` converts the model with
``tf.lite`` and times the interpreter on all cores. TensorFlow is imported only for those two.
"""

import dataclasses
import os
import statistics
import tempfile
import time
import warnings

import keras
import numpy as np

from sparse_keras.inspection import architecture
from sparse_keras.utils import tables, timing

RUNTIMES = ("keras", "tf", "tflite")
# Speedup / multiply-add reduction below which the report warns (the fall in multiply-adds did not turn
# into time); also a multiply-add fall of at least this factor with no speedup at all.
WARN_EFFICIENCY = 0.5


def tflite_bytes(model):
    """The model converted to a TFLite flatbuffer (through a SavedModel export; TensorFlow backend)."""
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as directory:
        model.export(directory, format="tf_saved_model", verbose=False)
        return tf.lite.TFLiteConverter.from_saved_model(directory).convert()


def tflite_seconds(content, input_shape, repeats=10, warmup=2):
    """Median seconds of one TFLite interpreter invocation on random data of ``input_shape``."""
    import tensorflow as tf

    with warnings.catch_warnings():
        # TF 2.21 deprecates tf.lite.Interpreter in favour of the separate ai_edge_litert package, which
        # runs the same XNNPACK kernels; the warning says nothing about this measurement.
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated", category=UserWarning)
        interpreter = tf.lite.Interpreter(model_content=content, num_threads=os.cpu_count())
    detail = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(detail["index"], input_shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(detail["index"], np.random.default_rng(0).random(input_shape, dtype="float32"))
    for _ in range(warmup):
        interpreter.invoke()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        interpreter.invoke()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def latency(model, input_shape, batch_sizes=(1, 64), runtimes=("tf", "tflite"), repeats=10):
    """Median seconds per batch, ``{(runtime, batch_size): seconds}``.

    Args:
      model: a Keras model with one input.
      input_shape: one example's shape, without the batch axis.
      batch_sizes: batch sizes to time.
      runtimes: any of :data:`RUNTIMES`.
      repeats: timed runs per entry (after two warm-up runs).
    """
    input_shape = tuple(int(d) for d in input_shape)
    _check(runtimes, batch_sizes)
    return {key: timer() for key, timer in _timers(model, input_shape, batch_sizes, runtimes, repeats).items()}


def _check(runtimes, batch_sizes):
    bad = [r for r in runtimes if r not in RUNTIMES]
    if bad:
        raise ValueError(f"runtimes must be among {RUNTIMES}, got {bad!r}")
    if "tf" in runtimes and keras.backend.backend() != "tensorflow":
        raise ValueError(f'runtime "tf" needs KERAS_BACKEND=tensorflow; the backend is {keras.backend.backend()!r} (use "keras")')
    bad = [b for b in batch_sizes if isinstance(b, bool) or not isinstance(b, int) or b < 1]
    if bad or not batch_sizes:
        raise ValueError(f"batch_sizes must be positive integers, got {batch_sizes!r}")


def _timers(model, input_shape, batch_sizes, runtimes, repeats):
    """``{(runtime, batch): timer}``, each timer measuring the median seconds of ``repeats`` runs when called."""
    content = tflite_bytes(model) if "tflite" in runtimes else None
    timers = {}
    for runtime in runtimes:
        for batch in batch_sizes:
            shape = (batch, *input_shape)
            if runtime == "tflite":
                timers[runtime, batch] = lambda shape=shape: tflite_seconds(content, shape, repeats)
            else:
                timers[runtime, batch] = lambda shape=shape: timing.keras_seconds(model, shape, repeats)
    return timers


@dataclasses.dataclass
class Comparison:
    """Original against shrunk: sizes, multiply-adds and measured latencies."""

    original: str
    shrunk: str
    params: tuple  # (original, shrunk)
    macs: tuple
    file_bytes: tuple  # .keras file sizes
    latency: dict  # {(runtime, batch): (original seconds, shrunk seconds)}

    @property
    def mac_reduction(self):
        return self.macs[0] / max(self.macs[1], 1)

    def speedup(self, runtime, batch):
        before, after = self.latency[runtime, batch]
        return before / after

    def efficiency(self, runtime, batch):
        """Measured speedup / multiply-add reduction: 1.0 means the saved arithmetic all became time."""
        return self.speedup(runtime, batch) / self.mac_reduction

    def warnings(self):
        """Entries where multiply-adds fell but latency did not follow."""
        found = []
        for runtime, batch in self.latency:
            if self.mac_reduction > 1.05 and (self.speedup(runtime, batch) <= 1.0 or self.efficiency(runtime, batch) < WARN_EFFICIENCY):
                found.append(
                    f"{runtime} batch {batch}: multiply-adds fell {self.mac_reduction:.2f}x but latency only "
                    f"{self.speedup(runtime, batch):.2f}x"
                )
        return found

    def to_markdown(self):
        rows = [
            ["parameters", f"{self.params[0]:,}", f"{self.params[1]:,}", f"{self.params[0] / max(self.params[1], 1):.2f}x"],
            ["multiply-adds", f"{self.macs[0]:,}", f"{self.macs[1]:,}", f"{self.mac_reduction:.2f}x"],
            [".keras file", f"{self.file_bytes[0]:,} B", f"{self.file_bytes[1]:,} B",
             f"{self.file_bytes[0] / max(self.file_bytes[1], 1):.2f}x"],
        ]
        for (runtime, batch), (before, after) in self.latency.items():
            rows.append([f"{runtime} latency, batch {batch}", f"{1e3 * before:.2f} ms", f"{1e3 * after:.2f} ms",
                         f"{before / after:.2f}x (speedup / MAC reduction = {self.efficiency(runtime, batch):.2f})"])
        lines = tables.markdown_lines(["", self.original, self.shrunk, "ratio"], rows, ["left", "right", "right", "right"])
        lines += [f"\n**Warning**: {w}" for w in self.warnings()]
        return "\n".join(lines) + "\n"


def compare(original, shrunk, input_shape, batch_sizes=(1, 64), runtimes=("tf", "tflite"), repeats=10, rounds=3):
    """Compares ``original`` and ``shrunk`` (see :class:`Comparison`); warns (``UserWarning``) where the
    multiply-adds fell but the latency did not.

    The two models are timed in ``rounds`` alternating rounds (original, shrunk, shrunk, original, ...) and
    each keeps its fastest round: timing one model after the other lets a change of machine load (other
    processes, frequency scaling) pass for a speedup or a slowdown.
    """
    input_shape = tuple(int(d) for d in input_shape)
    _check(runtimes, batch_sizes)
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds must be a positive integer, got rounds={rounds!r}")
    timers = [_timers(m, input_shape, batch_sizes, runtimes, repeats) for m in (original, shrunk)]
    best = [{key: float("inf") for key in timers[0]} for _ in timers]
    for round_index in range(rounds):
        order = (0, 1) if round_index % 2 == 0 else (1, 0)
        for key in timers[0]:
            for i in order:
                best[i][key] = min(best[i][key], timers[i][key]())
    before, after = best
    result = Comparison(
        original=original.name,
        shrunk=shrunk.name,
        params=(original.count_params(), shrunk.count_params()),
        macs=(architecture.report(original, tau=0.0).base_macs, architecture.report(shrunk, tau=0.0).base_macs),
        file_bytes=(keras_file_bytes(original), keras_file_bytes(shrunk)),
        latency={key: (before[key], after[key]) for key in before},
    )
    for message in result.warnings():
        warnings.warn(message, stacklevel=2)
    return result


def keras_file_bytes(model):
    """Size of ``model`` saved as a ``.keras`` file."""
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "model.keras")
        model.save(path)
        return os.path.getsize(path)

"""Wall-clock latency of a Keras model on the active backend.

Used by the latency reports (:mod:`sparse_keras.reports.latency`) and by :func:`sparse_keras.shrink`, which
times the equal forms of a layer with mixed kernel sizes to keep the fastest.
"""

import statistics
import time

import numpy as np


def keras_seconds(model, input_shape, repeats=10, warmup=2):
    """Median seconds of one compiled ``predict_on_batch`` of ``model`` on random data of ``input_shape``."""
    x = np.random.default_rng(0).random(input_shape, dtype="float32")
    for _ in range(warmup):
        model.predict_on_batch(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.predict_on_batch(x)  # returns numpy: the step has finished when the clock is read
        times.append(time.perf_counter() - start)
    return statistics.median(times)

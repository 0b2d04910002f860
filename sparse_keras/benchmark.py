"""Measuring what matters: inference latency, and the original-vs-shrunk comparison.

* :func:`latency` / :func:`keras_seconds` / :func:`tflite_seconds` — timing on Keras, TensorFlow, TFLite.
* :func:`compare` — a :class:`Comparison` of sizes, multiply-adds and latency that warns when the
  multiply-adds fell but the latency did not.
"""
from sparse_keras.reports.latency import RUNTIMES
from sparse_keras.reports.latency import WARN_EFFICIENCY
from sparse_keras.reports.latency import Comparison
from sparse_keras.reports.latency import compare
from sparse_keras.reports.latency import keras_file_bytes
from sparse_keras.reports.latency import latency
from sparse_keras.reports.latency import tflite_bytes
from sparse_keras.reports.latency import tflite_seconds
from sparse_keras.utils.timing import keras_seconds

__all__ = [
    "Comparison",
    "RUNTIMES",
    "WARN_EFFICIENCY",
    "compare",
    "keras_file_bytes",
    "keras_seconds",
    "latency",
    "tflite_bytes",
    "tflite_seconds",
]

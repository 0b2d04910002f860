"""Which ``tf.distribute`` strategy a training binary runs under (TensorFlow only).

``make_strategy("auto")`` is what a binary calls: a ``MultiWorkerMirroredStrategy`` when the ``TF_CONFIG``
environment variable describes a cluster of several workers (each worker runs the same command with its
own ``TF_CONFIG``), otherwise a ``MirroredStrategy`` over every local accelerator, or over every logical
CPU device when there is none. One logical CPU (the usual case) makes it a one-replica strategy, so the
same code path is exercised on a laptop and on a GPU box.
"""

import json
import os

import tensorflow as tf

KINDS = ("auto", "mirrored", "multi_worker", "default")


def workers_in_tf_config(environ=None):
    """Number of workers (the chief included) in ``TF_CONFIG``; 0 when it is unset or names no cluster."""
    environ = os.environ if environ is None else environ
    raw = environ.get("TF_CONFIG", "")
    if not raw.strip():
        return 0
    try:
        cluster = json.loads(raw).get("cluster", {})
    except (ValueError, AttributeError):
        raise ValueError(f"TF_CONFIG must be a JSON object with a 'cluster' key, got TF_CONFIG={raw!r}") from None
    return len(cluster.get("chief", ())) + len(cluster.get("worker", ()))


def auto_kind(environ=None):
    """The kind ``make_strategy("auto")`` picks in this environment."""
    return "multi_worker" if workers_in_tf_config(environ) > 1 else "mirrored"


def local_devices():
    """The devices a single-worker ``MirroredStrategy`` replicates over: all GPUs, else all logical CPUs.

    TensorFlow's own default ignores extra logical CPUs; we take them, so that tests (and CPU-only
    machines configured with several logical devices) exercise real replication.
    """
    gpus = tf.config.list_logical_devices("GPU")
    return [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]


def make_strategy(kind="auto"):
    """Returns a ``tf.distribute.Strategy``.

    Args:
      kind: ``"auto"`` (:func:`auto_kind`), ``"mirrored"`` (all local devices, see :func:`local_devices`),
        ``"multi_worker"`` (``MultiWorkerMirroredStrategy`` configured by ``TF_CONFIG``) or ``"default"``
        (TensorFlow's default no-op strategy: one replica, no copies of the variables).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got kind={kind!r}")
    if kind == "auto":
        kind = auto_kind()
    if kind == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if kind == "mirrored":
        return tf.distribute.MirroredStrategy(local_devices())
    if tf.distribute.has_strategy():
        # get_strategy() would hand back the enclosing strategy, not the default one.
        raise ValueError('make_strategy("default") must be called outside any strategy.scope()')
    return tf.distribute.get_strategy()

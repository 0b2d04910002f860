"""A run's test-set evaluation: a compiled forward pass, done once per distinct set of weights (TensorFlow only).

A run evaluates after every epoch, at every stage's end and after its transition, and once more for the
report; several of those see the same weights (the last epoch's and the stage's end, a transition that
changes nothing, the report's). :class:`Evaluator` remembers its last result for each model, keyed by a
fingerprint of the model's variable values, so each distinct state costs one pass over the test set. The
pass is a ``tf.function`` so that TensorFlow fuses each convolution with its bias and activation, which
an eager layer-by-layer call cannot do (a third of an eager pass went to separate bias-add and ReLU ops).
"""

import hashlib

import keras
import numpy as np
import tensorflow as tf


def weights_fingerprint(model):
    """A digest of every variable of ``model`` (path, shape, dtype and value): equal digests mean the
    same forward pass, since a layer's computation is fixed once it is built."""
    digest = hashlib.blake2b(digest_size=16)
    for variable in model.variables:
        value = np.ascontiguousarray(keras.ops.convert_to_numpy(variable))
        digest.update(f"{variable.path}|{value.shape}|{value.dtype.str}|".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def compiled_batch_statistics(model):
    """A ``tf.function`` ``(x, y) -> (number correct, summed cross-entropy)`` for one batch of
    ``model`` in inference mode (logits expected; a float16 or bfloat16 model's are cast to float32)."""

    @tf.function(reduce_retracing=True)
    def batch_statistics(x, y):
        logits = tf.cast(model(x, training=False), tf.float32)
        labels = tf.reshape(tf.cast(y, tf.int64), [-1])
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, axis=-1), labels), tf.int64))
        loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
        return correct, loss

    return batch_statistics


def evaluate(model, dataset, batch_statistics=None):
    """``(accuracy, mean cross-entropy)`` of ``model`` in inference mode over ``dataset`` of ``(x, y)``
    batches (integer labels, logits out)."""
    batch_statistics = batch_statistics or compiled_batch_statistics(model)
    correct = total = 0
    loss_sum = 0.0
    for x, y in dataset:
        batch_correct, batch_loss = batch_statistics(x, y)
        correct += int(batch_correct)
        loss_sum += float(batch_loss)
        total += int(tf.size(y))
    if total == 0:
        raise ValueError("evaluate() got an empty dataset: no test examples to score")
    return correct / total, loss_sum / total


class Evaluator:
    """``evaluator(model) -> (accuracy, loss)`` on a fixed test set, computed once per distinct weights.

    Keeps one compiled pass per model it has seen (a run has two: the trained model and the shrunk one)
    and the last result with its :func:`weights_fingerprint`; ``passes`` counts the passes actually run.
    """

    def __init__(self, dataset):
        self.dataset = dataset
        self.passes = 0
        self._models = {}  # id(model) -> (model, compiled pass, fingerprint, result)

    def __call__(self, model):
        fingerprint = weights_fingerprint(model)
        entry = self._models.get(id(model))
        if entry is not None and entry[0] is model and entry[2] == fingerprint:
            return entry[3]
        compiled = entry[1] if entry is not None and entry[0] is model else compiled_batch_statistics(model)
        result = evaluate(model, self.dataset, compiled)
        self.passes += 1
        self._models[id(model)] = (model, compiled, fingerprint, result)
        return result

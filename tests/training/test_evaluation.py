"""Tests for sparse_keras.training.evaluation: a run's test-set score, one pass per distinct weights."""

import keras
import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from sparse_keras.training import evaluation  # noqa: E402

pytestmark = pytest.mark.tf_only


def _model():
    return keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)])


def _data(n=50, batch=16):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(n, 6)).astype("float32")
    y = rng.integers(0, 3, n)
    return x, y, tf.data.Dataset.from_tensor_slices((x, y)).batch(batch)


def test_evaluate_matches_a_direct_computation_with_a_partial_last_batch():
    model = _model()
    x, y, dataset = _data(n=50, batch=16)  # 16 + 16 + 16 + 2
    logits = keras.ops.convert_to_numpy(model(x))
    accuracy, loss = evaluation.evaluate(model, dataset)
    assert accuracy == pytest.approx(np.mean(logits.argmax(-1) == y))
    expected = keras.ops.convert_to_numpy(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))
    assert loss == pytest.approx(float(expected.mean()), rel=1e-5)


def test_evaluate_accepts_column_labels():
    model = _model()
    x, y, _ = _data()
    column = tf.data.Dataset.from_tensor_slices((x, y[:, None])).batch(16)
    flat = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    assert evaluation.evaluate(model, column) == pytest.approx(evaluation.evaluate(model, flat))


def test_evaluate_refuses_an_empty_dataset():
    x, y, _ = _data()
    empty = tf.data.Dataset.from_tensor_slices((x, y)).take(0).batch(4)
    with pytest.raises(ValueError, match="empty dataset"):
        evaluation.evaluate(_model(), empty)


def test_evaluator_runs_one_pass_per_distinct_weights():
    model = _model()
    _, _, dataset = _data()
    evaluator = evaluation.Evaluator(dataset)
    first = evaluator(model)
    assert evaluator(model) == first and evaluator.passes == 1  # same weights: remembered
    kernel = model.layers[-1].kernel
    kernel.assign(kernel * 0.0)  # a transition that zeroes the classifier changes the score
    changed = evaluator(model)
    assert evaluator.passes == 2
    assert changed == (pytest.approx(np.mean(_data()[1] == 0)), pytest.approx(np.log(3.0)))


def test_evaluator_tells_models_apart_and_sees_non_trainable_state():
    _, _, dataset = _data()
    a, b = _model(), _model()
    evaluator = evaluation.Evaluator(dataset)
    evaluator(a)
    evaluator(b)
    assert evaluator.passes == 2
    # Moving statistics are not trained by gradients but change the forward pass: they are fingerprinted.
    bn = keras.Sequential([keras.Input((6,)), keras.layers.BatchNormalization(), keras.layers.Dense(3)])
    evaluator(bn)
    bn.layers[0].moving_mean.assign(np.ones(6, "float32"))
    evaluator(bn)
    assert evaluator.passes == 4


def test_weights_fingerprint_depends_on_values_only():
    a = _model()
    fingerprint = evaluation.weights_fingerprint(a)
    assert evaluation.weights_fingerprint(a) == fingerprint
    a.layers[0].bias.assign(a.layers[0].bias + 1e-7)
    assert evaluation.weights_fingerprint(a) != fingerprint

"""FusedBatchNormalization computes what keras.layers.BatchNormalization does, on every backend."""

import keras
import numpy as np
import pytest

from sparse_keras.layers import FusedBatchNormalization


def _pair(shape, **kwargs):
    layers = [keras.layers.BatchNormalization(epsilon=1e-5, momentum=0.9, **kwargs),
              FusedBatchNormalization(epsilon=1e-5, momentum=0.9, **kwargs)]
    for layer in layers:
        layer.build(shape)
        channels = layer.gamma.shape[0]
        layer.gamma.assign(np.linspace(0.5, 2.0, channels))
        layer.beta.assign(np.linspace(-1.0, 1.0, channels))
    return layers


@pytest.mark.parametrize("shape", [(4, 5, 6, 7), (1, 1, 1, 3)])
def test_training_matches_keras_outputs_and_moving_statistics(shape):
    x = np.random.default_rng(0).normal(2.0, 3.0, size=shape).astype("float32")
    keras_bn, fused = _pair(shape)
    for _ in range(2):  # the second step starts from the moving statistics the first one left
        np.testing.assert_allclose(fused(x, training=True), keras_bn(x, training=True), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fused.moving_mean, keras_bn.moving_mean, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(fused.moving_variance, keras_bn.moving_variance, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fused(x, training=False), keras_bn(x, training=False), rtol=1e-5, atol=1e-5)


@pytest.mark.tf_only
def test_training_gradients_match_keras():
    import tensorflow as tf

    shape = (4, 5, 6, 7)
    x = tf.constant(np.random.default_rng(1).normal(size=shape).astype("float32"))
    weights = tf.range(7, dtype=tf.float32) ** 2
    grads = []
    for layer in _pair(shape):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x, training=True) * weights)
        grads.append(tape.gradient(loss, [x, layer.gamma, layer.beta]))
    for ours, theirs in zip(*grads):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)


def test_other_inputs_take_keras_path_and_config_round_trips():
    keras_bn, fused = _pair((2, 3, 4), axis=-1)  # 3-D input: not the fused kernel's layout
    x = np.random.default_rng(2).normal(size=(2, 3, 4)).astype("float32")
    np.testing.assert_allclose(fused(x, training=True), keras_bn(x, training=True), rtol=1e-5, atol=1e-5)
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(fused))
    assert type(clone) is FusedBatchNormalization and clone.get_config() == fused.get_config()

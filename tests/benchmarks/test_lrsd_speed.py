"""Smoke tests of benchmarks.lrsd_speed: it runs end to end and its sparse-S network computes the same function."""

import keras
import numpy as np
import pytest

from benchmarks import lrsd_speed
from sparse_keras import convert
from sparse_keras import lrsd


def _tiny_lrsd():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(6, 3, strides=2, use_bias=False, name="conv")(inputs)
    x = keras.layers.Conv2D(4, 1, name="pointwise")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return convert.to_lrsd(keras.Model(inputs, keras.layers.Dense(3, name="fc")(x)))


def test_prune_to_density_keeps_that_share_of_every_s():
    model = _tiny_lrsd()
    lrsd_speed.prune_to_density(model, 0.25)
    for layer in lrsd.lrsd_layers_of(model):
        s = keras.ops.convert_to_numpy(layer.s_kernel)
        assert np.count_nonzero(s) == round(0.25 * s.size)


@pytest.mark.tf_only  # tf.sparse and tf.image.extract_patches
def test_sparse_s_network_equals_the_pruned_lrsd_network():
    model = _tiny_lrsd()
    lrsd_speed.prune_to_density(model, 0.3)
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")
    sparse = lrsd_speed.with_sparse_s(model)
    np.testing.assert_allclose(sparse.predict_on_batch(x), model.predict_on_batch(x), atol=1e-5)


def test_result_ratios_compare_each_variant_with_the_dense_network_doing_the_same():
    result = lrsd_speed.Result("tensorflow", "vgg19_slim", 32, 0.05, {
        "train:dense": [2.0, 4.0, 3.0], "train:lrsd": [3.0, 6.0, 4.5], "infer:dense": [1.0], "infer:lrsd": [0.5]})
    assert result.ratio("train:lrsd") == 1.5 and result.ratio("infer:lrsd") == 0.5
    assert "| train:lrsd | 4.5 | 3.0-6.0 | 1.50 |" in result.to_markdown()


def test_lrsd_speed_rejects_bad_flags():
    with pytest.raises(SystemExit):
        lrsd_speed.parse_args(["--s_density", "0"])
    with pytest.raises(SystemExit):
        lrsd_speed.parse_args(["--rounds", "0"])

"""A saved architecture as a registry model, re-initialised: how a learned architecture is trained from scratch."""

import keras
import numpy as np
import pytest

from sparse_keras import models
from sparse_keras.models import keras_file
from sparse_keras.shrinking import shrink, synthetic


def _kernels(model):
    return {layer.name: keras.ops.convert_to_numpy(layer.kernel) for layer in model.layers if hasattr(layer, "kernel")}


def test_a_shrunk_architecture_gets_the_base_initializers_back_and_fresh_weights():
    base = models.get("plain_cnn", num_classes=10, input_shape=(8, 8, 1), widths=(8, 8), kernel_sizes=(3, 3), pool_after=())
    synthetic.zero_structures(base, channel_fraction=0.5, seed=1)
    small = shrink(base)
    # The shrunk model's layers say "zeros" (its weights were set after building): cloning it as it is
    # would train from all-zero kernels.
    assert small.get_layer("conv1").get_config()["kernel_initializer"]["class_name"] == "Zeros"

    fresh = keras_file.reinitialized(small, like=base)
    for layer in fresh.layers:
        if hasattr(layer, "kernel"):
            assert layer.get_config()["kernel_initializer"] == base.get_layer(layer.name).get_config()["kernel_initializer"]
    assert [w.shape for w in fresh.get_weights()] == [w.shape for w in small.get_weights()]
    for name, kernel in _kernels(fresh).items():
        assert np.std(kernel) > 0, name  # random, not zeros
        assert not np.allclose(kernel, _kernels(small)[name])  # not the trained weights either


def test_without_a_reference_layers_get_their_class_defaults():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(3, kernel_initializer="zeros", name="fc")(inputs))
    fresh = keras_file.reinitialized(model)
    assert fresh.get_layer("fc").get_config()["kernel_initializer"]["class_name"] == "GlorotUniform"
    assert np.std(keras.ops.convert_to_numpy(fresh.get_layer("fc").kernel)) > 0


def test_the_registry_loads_a_file_checks_shapes_and_reinitialises_on_request(tmp_path):
    model = models.get("plain_cnn", num_classes=10, input_shape=(8, 8, 1), widths=(4,), kernel_sizes=(3,), pool_after=())
    path = str(tmp_path / "arch.keras")
    model.save(path)
    same = models.get("keras_file", num_classes=10, input_shape=(8, 8, 1), path=path)
    np.testing.assert_array_equal(_kernels(same)["conv1"], _kernels(model)["conv1"])
    fresh = models.get("keras_file", num_classes=10, input_shape=(8, 8, 1), path=path, reinitialize=True)
    assert not np.allclose(_kernels(fresh)["conv1"], _kernels(model)["conv1"])
    with pytest.raises(ValueError, match=r"input_shape=\(9, 9, 1\)"):
        models.get("keras_file", num_classes=10, input_shape=(9, 9, 1), path=path)

"""Mixed precision is one switch for every model family: bfloat16 compute, float32 delicate parts."""

import keras
import numpy as np
import pytest

from sparse_keras import NestedHalfRing, models, regularize
from sparse_keras.layers import CSCConv2D


@pytest.fixture
def bfloat16_policy():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    yield
    keras.mixed_precision.set_global_policy("float32")


def csc_net(num_classes, input_shape):
    inputs = keras.Input(input_shape)
    h = CSCConv2D(8, 3, name="csc")(inputs)
    h = keras.layers.GlobalAveragePooling2D()(h)
    return keras.Model(inputs, keras.layers.Dense(num_classes, name="classifier")(h))


BUILDERS = {
    "plain_cnn + NestedHalfRing": lambda: regularize(models.get("plain_cnn", 10, (16, 16, 1)), NestedHalfRing(1e-3)),
    "plain_cnn lrsd": lambda: models.get("plain_cnn", 10, (16, 16, 1), lrsd=True),
    "lstnet_resnet20": lambda: models.get("lstnet_resnet20", 10, (16, 16, 3)),
    "csc": lambda: csc_net(10, (16, 16, 3)),
}


# LST-Net's many weight shapes each compile an initializer on JAX (~1 min on 2 CPU cores): TensorFlow only.
@pytest.mark.parametrize(
    "family", [pytest.param(f, marks=pytest.mark.tf_only) if f.startswith("lstnet") else f for f in sorted(BUILDERS)]
)
def test_one_training_step_in_bfloat16_stays_finite_with_float32_state(family, bfloat16_policy):
    model = BUILDERS[family]()
    x = np.random.default_rng(0).random((4, *model.input_shape[1:])).astype("float32")
    y = np.arange(4) % 10
    model.compile(keras.optimizers.SGD(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    loss = model.train_on_batch(x, y)
    assert np.isfinite(loss)
    assert all(v.dtype == "float32" for v in model.trainable_variables)  # float32 master weights
    assert np.isfinite(keras.ops.convert_to_numpy(keras.ops.cast(model(x), "float32"))).all()
    if family == "csc":
        layer = model.get_layer("csc")
        assert layer.step_size.dtype == "float32" and np.isfinite(keras.ops.convert_to_numpy(layer.step_size))
    if family.endswith("NestedHalfRing"):
        assert all(keras.ops.convert_to_numpy(term).dtype == np.float32 for term in model.losses)

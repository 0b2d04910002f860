"""LRSD layers (Guo et al. 2019, eq. 1-4) and `sparse_keras.convert.to_lrsd`."""

import keras
import numpy as np
import pytest

from sparse_keras import convert
from sparse_keras.layers import LRSDConv2D, LRSDDense
from sparse_keras.layers import lrsd as lrsd_layers
from sparse_keras.inspection import kernels
from sparse_keras.sparsity import masking
from sparse_keras.testing import run_layer_test, to_numpy

# Backend-independent Python (graph rewriting, counting, report writing): checked on TensorFlow only, because
# on JAX every new weight shape compiles its initializer and CI time is shared by both backend runs.
backend_independent = pytest.mark.skipif(
    keras.backend.backend() == "jax", reason="backend-independent; run on TensorFlow"
)


def _images(shape=(2, 9, 9, 3)):
    return np.random.default_rng(1).normal(size=shape).astype("float32")


def _effective_kernel(layer):
    """``U V + S`` computed in numpy from the three variables (eq. 1 and 3)."""
    v, u, s = (to_numpy(w) for w in (layer.v_kernel, layer.u_kernel, layer.s_kernel))
    return np.einsum("...r,rk->...k", v, u.reshape(u.shape[-2:])) + s


# -- the module equals one plain layer with W = U V + S -------------------------------------------------
@pytest.mark.parametrize(
    "kernel_size, strides, padding, rank", [(3, 1, "same", 1), (3, 2, "same", 2), ((3, 1), 2, "valid", 3)]
)
def test_conv_output_equals_plain_conv_with_w_equal_uv_plus_s(kernel_size, strides, padding, rank):
    x = _images()
    layer = LRSDConv2D(5, kernel_size, rank=rank, strides=strides, padding=padding, batch_norm=False, use_bias=True,
                       bias_initializer="random_normal")
    y = to_numpy(layer(x))
    plain = keras.layers.Conv2D(5, kernel_size, strides=strides, padding=padding)
    plain.build(x.shape)
    plain.set_weights([_effective_kernel(layer), to_numpy(layer.bias)])
    np.testing.assert_allclose(y, to_numpy(plain(x)), atol=1e-5)
    np.testing.assert_allclose(to_numpy(layer.kernel), _effective_kernel(layer), atol=1e-6)


def test_dense_output_equals_plain_dense_with_w_equal_uv_plus_s():
    x = _images((4, 7))
    layer = LRSDDense(3, rank=2, bias_initializer="random_normal")
    y = to_numpy(layer(x))
    plain = keras.layers.Dense(3)
    plain.build(x.shape)
    plain.set_weights([_effective_kernel(layer), to_numpy(layer.bias)])
    np.testing.assert_allclose(y, to_numpy(plain(x)), atol=1e-5)


def test_batch_norm_after_u_folds_into_one_conv_at_inference():
    x = _images()
    layer = LRSDConv2D(4, 3, rank=1)
    layer(x)
    bn = layer.low_rank_bn
    rng = np.random.default_rng(2)
    for var in (bn.gamma, bn.beta, bn.moving_mean):
        var.assign(rng.normal(size=4).astype("float32"))
    bn.moving_variance.assign(rng.uniform(0.5, 2, size=4).astype("float32"))
    kernel, bias = layer.folded_kernel_and_bias()
    expected = keras.ops.conv(x, kernel, padding="same") + bias
    np.testing.assert_allclose(to_numpy(layer(x, training=False)), to_numpy(expected), atol=1e-5)


def test_sparse_only_has_just_s_and_computes_a_plain_conv():
    x = _images()
    layer = LRSDConv2D(4, 1, sparse_only=True)
    y = layer(x)
    assert [w.name for w in layer.weights] == ["s_kernel"]
    np.testing.assert_allclose(to_numpy(y), to_numpy(keras.ops.conv(x, layer.s_kernel)), atol=1e-6)


def test_l1_penalty_is_lambda_times_sum_abs_s_and_only_on_s():
    layer = LRSDConv2D(4, 3, rank=1, sparse_l1=2e-6)
    layer(_images())
    (loss,) = layer.losses
    np.testing.assert_allclose(float(loss), 2e-6 * np.abs(to_numpy(layer.s_kernel)).sum(), rtol=1e-5)
    assert layer.v_kernel.regularizer is None and layer.u_kernel.regularizer is None
    assert LRSDConv2D(4, 3, sparse_l1=0.0).sparse_regularizer is None


# -- rank ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("rank, expected", [(1, 1), (2, 2), ("2", 2), (0.1, 6), ("K/10", 6), ("K/20", 3), ("K/128", 1)])
def test_rank_is_an_int_or_a_share_of_the_outputs(rank, expected):
    assert lrsd_layers.resolve_rank(rank, 64) == expected


@pytest.mark.parametrize("rank", [0, -1, 1.5, "K/0", "K", "abc", True, None])
def test_bad_rank_is_named(rank):
    with pytest.raises(ValueError, match="rank="):
        LRSDConv2D(8, 3, rank=rank)


def test_rank_larger_than_the_layer_allows_is_refused_at_build():
    with pytest.raises(ValueError, match="rank=5 exceeds"):
        LRSDConv2D(4, 3, rank=5)(_images())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"sparse_l1": -1.0}, "sparse_l1="),
        ({"sparse_l1": None}, "sparse_l1="),
        ({"padding": "causal"}, "padding="),
        ({"kernel_size": 0}, "kernel_size="),
        ({"strides": (1, 2, 3)}, "strides="),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    args = {"filters": 4, "kernel_size": 3} | kwargs
    with pytest.raises(ValueError, match=match):
        LRSDConv2D(**args)


# -- integration: config, saving, the kernel registry and masks ----------------------------------------
@pytest.mark.parametrize(
    "cls, kwargs, input_shape, output_shape, counts, losses",
    [
        # V, U, S trainable, the BN after U two and two; l1 on S is the one loss.
        (LRSDConv2D, dict(filters=4, kernel_size=3, rank="K/2"), (2, 8, 8, 3), (2, 8, 8, 4), (5, 2), 1),
        (LRSDConv2D, dict(filters=5, kernel_size=(3, 1), strides=2, padding="valid", batch_norm=False,
                          use_bias=True, activation="relu", sparse_l1=0.0), (2, 9, 9, 3), (2, 4, 5, 5), (4, 0), 0),
        (LRSDDense, dict(units=2, sparse_only=True), (2, 7), (2, 2), (2, 0), 1),  # S and the bias
        (LRSDDense, dict(units=3, rank=2, batch_norm=True), (4, 7), (4, 3), (6, 2), 1),
    ],
    ids=["conv", "conv-valid-strided", "dense-sparse-only", "dense-low-rank"],
)
def test_layer_contract(cls, kwargs, input_shape, output_shape, counts, losses):
    run_layer_test(
        cls, kwargs, input_shape=input_shape, expected_output_shape=output_shape,
        expected_num_trainable_weights=counts[0], expected_num_non_trainable_weights=counts[1],
        expected_num_losses=losses, expected_updated_variables=("moving_mean",) if counts[1] else (),
    )


def test_s_is_the_sparsifiable_kernel_and_takes_masks_by_path():
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, LRSDConv2D(4, 3, name="lrsd_conv")(inputs))
    (slot,) = kernels.model_kernel_slots(model)
    assert slot.weight_attr == "s_kernel" and slot.layout == "conv" and slot.shape == (3, 3, 3, 4)
    mask = (np.arange(108).reshape(3, 3, 3, 4) % 2).astype("float32")
    masking.install_masks(model, {slot.path: mask})
    assert np.all(to_numpy(model.get_layer("lrsd_conv").s_kernel)[mask == 0] == 0)


# -- to_lrsd ---------------------------------------------------------------------------------------------
def _plain_model():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(6, 3, strides=2, use_bias=False, name="conv3x3")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.Conv2D(5, 1, activation="relu", name="conv1x1")(x)
    x = keras.layers.DepthwiseConv2D(3, name="depthwise")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="classifier")(x), name="plain")


@backend_independent
def test_to_lrsd_replaces_convs_and_dense_with_the_papers_choices():
    converted = convert.to_lrsd(_plain_model(), rank=2, sparse_l1=1e-6)
    conv, pointwise, fc = (converted.get_layer(n) for n in ("conv3x3", "conv1x1", "classifier"))
    assert isinstance(conv, LRSDConv2D) and conv.rank == 2 and conv.strides == (2, 2) and conv.batch_norm
    assert isinstance(pointwise, LRSDConv2D) and pointwise.sparse_only and pointwise.use_bias
    assert pointwise.activation is keras.activations.relu
    assert isinstance(fc, LRSDDense) and fc.sparse_only and fc.sparse_l1 == 1e-6
    assert isinstance(converted.get_layer("depthwise"), keras.layers.DepthwiseConv2D)
    assert converted(_images((1, 8, 8, 3))).shape == (1, 3)


@backend_independent
def test_to_lrsd_where_picks_layers_by_name():
    converted = convert.to_lrsd(_plain_model(), where=["conv3x3"], sparse_only=False)
    assert isinstance(converted.get_layer("conv3x3"), LRSDConv2D)
    assert type(converted.get_layer("classifier")) is keras.layers.Dense


@backend_independent
@pytest.mark.parametrize(
    "where, match", [(["nope"], "does not have"), (["depthwise"], "not Conv2D or Dense"), ([3], "where")]
)
def test_to_lrsd_bad_where_is_named(where, match):
    with pytest.raises(ValueError, match=match):
        convert.to_lrsd(_plain_model(), where=where)


@backend_independent
def test_to_lrsd_refuses_dilated_convs_and_subclassed_models():
    inputs = keras.Input((8, 8, 3))
    dilated = keras.Model(inputs, keras.layers.Conv2D(2, 3, dilation_rate=2, name="dilated")(inputs))
    with pytest.raises(ValueError, match="dilation_rate"):
        convert.to_lrsd(dilated)

    class Sub(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(ValueError, match="subclassed"):
        convert.to_lrsd(Sub())


def test_from_lrsd_folds_every_lrsd_layer_into_one_plain_layer_at_inference():
    converted = convert.to_lrsd(_plain_model(), rank=1)
    x = _images((2, 8, 8, 3))
    bn = converted.get_layer("conv3x3").low_rank_bn
    bn.moving_mean.assign(np.linspace(-1, 1, 6).astype("float32"))
    bn.moving_variance.assign(np.linspace(0.5, 2, 6).astype("float32"))
    folded = convert.from_lrsd(converted)
    assert type(folded.get_layer("conv3x3")) is keras.layers.Conv2D
    assert type(folded.get_layer("classifier")) is keras.layers.Dense
    assert not any(lrsd_layers.is_lrsd_layer(layer) for layer in folded.layers)
    np.testing.assert_allclose(to_numpy(folded(x, training=False)), to_numpy(converted(x, training=False)), atol=1e-5)


@pytest.mark.parametrize(
    "size, kernel_size, strides, padding", [(9, 3, 2, "same"), (9, 3, 2, "valid"), (8, (3, 1), 1, "valid")]
)
def test_output_shape_is_that_of_the_plain_conv(size, kernel_size, strides, padding):
    layer = LRSDConv2D(4, kernel_size, strides=strides, padding=padding)
    plain = keras.layers.Conv2D(4, kernel_size, strides=strides, padding=padding)
    shape = (None, size, size, 3)
    assert layer.compute_output_shape(shape) == plain.compute_output_shape(shape)

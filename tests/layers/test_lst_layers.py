"""LST-Net's building blocks: DCT initializers, soft thresholding, shared T_s, LST blocks."""

import math

import keras
import numpy as np
import pytest

from sparse_keras import initializers
from sparse_keras import layers as sk_layers
from sparse_keras.testing import gradient, run_layer_test, to_numpy


def dct_ii(num_basis, size):
    """The orthonormal DCT-II in closed form: ``C[u, n] = alpha_u cos(pi u (2n + 1) / (2 size))``."""
    u, n = np.meshgrid(np.arange(num_basis), np.arange(size), indexing="ij")
    alpha = np.where(u == 0, math.sqrt(1.0 / size), math.sqrt(2.0 / size))
    return alpha * np.cos(np.pi * u * (2 * n + 1) / (2 * size))


# -- DCT initializers ---------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [1, 2, 3, 5, 16, 64])
def test_dct_basis_is_the_orthonormal_dct_ii(size):
    basis = initializers.dct_basis(size, size)
    np.testing.assert_allclose(basis, dct_ii(size, size), atol=1e-12)
    np.testing.assert_allclose(basis @ basis.T, np.eye(size), atol=1e-12)
    first = initializers.dct_basis(1, size)  # the lowest frequency: the constant vector
    np.testing.assert_allclose(first, np.full((1, size), 1.0 / math.sqrt(size)), atol=1e-12)


def test_dct_matrix_reduces_by_analysis_and_grows_by_synthesis():
    # m < n: the first m DCT-II rows of length n; m >= n: the first n columns of the m-point inverse DCT.
    np.testing.assert_allclose(initializers.dct_matrix(2, 3), dct_ii(2, 3), atol=1e-12)
    np.testing.assert_allclose(initializers.dct_matrix(6, 4), dct_ii(4, 6).T, atol=1e-12)
    square = initializers.dct_matrix(8, 8)
    np.testing.assert_allclose(square, dct_ii(8, 8).T, atol=1e-12)
    np.testing.assert_allclose(square @ square.T, np.eye(8), atol=1e-12)


@pytest.mark.parametrize("bad", [dict(num_basis=4, size=3), dict(num_basis=0, size=3), dict(num_basis=2, size=2.0)])
def test_dct_basis_rejects_bad_sizes(bad):
    with pytest.raises(ValueError, match="num_basis|size"):
        initializers.dct_basis(**bad)


def test_spatial_filters_are_the_four_lowest_separable_3x3_dct_filters():
    filters = initializers.separable_dct_filters(2, 3)
    d = dct_ii(2, 3)
    for i in range(2):
        for j in range(2):  # filter i*a + j: horizontal frequency i (along x), vertical j (along y)
            np.testing.assert_allclose(filters[:, :, 2 * i + j], np.outer(d[j], d[i]), atol=1e-12)
    flat = filters.reshape(9, 4)
    np.testing.assert_allclose(flat.T @ flat, np.eye(4), atol=1e-12)
    np.testing.assert_allclose(filters[:, :, 0], np.full((3, 3), 1.0 / 3.0), atol=1e-12)  # the DC filter


def test_channel_dct_initializer_is_the_keras_layout_of_weight_out_in():
    kernel = to_numpy(initializers.ChannelDCT()((1, 1, 5, 3)))
    np.testing.assert_allclose(kernel[0, 0], initializers.dct_matrix(3, 5).T, atol=1e-6)
    with pytest.raises(ValueError, match=r"shape=\(3, 3, 5, 3\)"):
        initializers.ChannelDCT()((3, 3, 5, 3))


def test_spatial_dct_initializer_repeats_the_filters_over_channels():
    kernel = to_numpy(initializers.SpatialDCT()((3, 3, 4, 4)))
    for c in range(4):
        np.testing.assert_allclose(kernel[:, :, c], initializers.separable_dct_filters(2, 3), atol=1e-6)
    with pytest.raises(ValueError, match="perfect square"):
        initializers.SpatialDCT()((3, 3, 1, 3))


def test_initializers_round_trip_through_keras_serialization():
    for init in (initializers.ChannelDCT(), initializers.SpatialDCT()):
        restored = keras.initializers.deserialize(keras.initializers.serialize(init))
        assert type(restored) is type(init)


# -- soft thresholding --------------------------------------------------------------------------------
def test_soft_threshold_matches_sign_times_shrunk_magnitude():
    x = np.array([-2.0, -0.5, -0.1, 0.0, 0.05, 0.3, 1.0], "float32")
    y = to_numpy(sk_layers.SoftThreshold(0.2)(x))
    np.testing.assert_allclose(y, np.sign(x) * np.maximum(np.abs(x) - 0.2, 0.0), atol=1e-7)


def test_soft_threshold_gradient_is_one_outside_the_dead_zone_and_zero_inside():
    x = np.array([-1.0, -0.1, 0.0, 0.1, 1.0], "float32")
    np.testing.assert_allclose(gradient(sk_layers.SoftThreshold(0.5), x), [1, 0, 0, 0, 1])


@pytest.mark.parametrize("tau", [-1e-4, float("nan"), "0.1", True])
def test_soft_threshold_rejects_bad_tau(tau):
    with pytest.raises(ValueError, match="tau="):
        sk_layers.SoftThreshold(tau)


# -- T_s: shared spatial transform ---------------------------------------------------------------------
def reference_shared_depthwise(x, filters, stride):
    """Numpy conv of every channel with every filter, symmetric zero padding (k-1)/2 as PyTorch."""
    k, _, m = filters.shape
    p = (k - 1) // 2
    xp = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    n, h, w, c = x.shape
    ho, wo = (h + 2 * p - k) // stride + 1, (w + 2 * p - k) // stride + 1
    out = np.zeros((n, ho, wo, c * m), "float64")
    for i in range(ho):
        for j in range(wo):
            patch = xp[:, i * stride : i * stride + k, j * stride : j * stride + k, :]  # (n, k, k, c)
            out[:, i, j, :] = np.einsum("nyxc,yxm->ncm", patch, filters).reshape(n, c * m)
    return out


@pytest.mark.parametrize("implementation", ["depthwise", "reshape"])
@pytest.mark.parametrize("stride,size", [(1, 6), (2, 6), (2, 7)])
def test_shared_spatial_transform_is_a_symmetric_padded_depthwise_conv(stride, size, implementation):
    x = np.random.default_rng(0).normal(size=(2, size, size, 3)).astype("float32")
    layer = sk_layers.SharedSpatialTransform(a=2, kernel_size=3, strides=stride, implementation=implementation)
    y = to_numpy(layer(x))
    expected = reference_shared_depthwise(x, initializers.separable_dct_filters(2, 3), stride)
    assert y.shape == expected.shape == layer.compute_output_shape(x.shape)
    np.testing.assert_allclose(y, expected, atol=1e-5)


def test_shared_spatial_transform_holds_one_copy_of_its_filters():
    shared = sk_layers.SharedSpatialTransform(a=2, kernel_size=3)
    shared.build((None, 8, 8, 16))
    assert [tuple(w.shape) for w in shared.trainable_weights] == [(3, 3, 1, 4)]  # 36 weights, any width
    unshared = sk_layers.SharedSpatialTransform(a=2, kernel_size=3, share=False)
    unshared.build((None, 8, 8, 16))
    assert tuple(unshared.kernel.shape) == (3, 3, 16, 4)


def test_shared_filter_gradient_sums_over_channels():
    layer = sk_layers.SharedSpatialTransform(a=2, kernel_size=3)
    layer.build((None, 4, 4, 2))
    x = np.random.default_rng(1).normal(size=(1, 4, 4, 2)).astype("float32")
    # d sum(y) / d kernel, with the kernel as input: the sum over channels of each channel's gradient.
    def output_of(kernel):
        tiled = keras.ops.tile(kernel, (1, 1, 2, 1))
        return keras.ops.depthwise_conv(x, tiled, strides=1, padding="same")

    per_channel = lambda k: keras.ops.depthwise_conv(x, k, strides=1, padding="same")  # noqa: E731
    shared = gradient(output_of, to_numpy(layer.kernel))
    separate = gradient(per_channel, np.repeat(to_numpy(layer.kernel), 2, axis=2))
    np.testing.assert_allclose(shared[:, :, 0], separate.sum(axis=2), rtol=1e-5)


def test_both_implementations_train_the_shared_filters_alike():
    x = np.random.default_rng(4).normal(size=(2, 5, 5, 3)).astype("float32")
    grads = []
    for implementation in ("depthwise", "reshape"):
        layer = sk_layers.SharedSpatialTransform(a=2, kernel_size=3, strides=2, implementation=implementation)
        layer.build(x.shape)
        grads.append(gradient(lambda v, layer=layer: layer(v) ** 2, x))
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="'im2col'"):
        sk_layers.SharedSpatialTransform(implementation="im2col")


@pytest.mark.parametrize("kernel_size", [2, 0, 3.0])
def test_spatial_transform_needs_an_odd_kernel(kernel_size):
    with pytest.raises(ValueError, match="kernel_size="):
        sk_layers.SharedSpatialTransform(kernel_size=kernel_size)


# -- blocks ---------------------------------------------------------------------------------------------
def built(block, shape):
    x = np.random.default_rng(2).normal(size=shape).astype("float32")
    return block, to_numpy(block(x, training=False))


@pytest.mark.parametrize(
    "stride,c_in,filters,shape_out,shortcut_shape",
    [(1, 16, 16, (2, 8, 8, 16), None), (1, 4, 16, (2, 8, 8, 16), (1, 1, 4, 4)), (2, 8, 32, (2, 4, 4, 32), (1, 1, 8, 4))],
)
def test_lst2_block_shapes_and_grouped_shortcut(stride, c_in, filters, shape_out, shortcut_shape):
    block, y = built(sk_layers.LSTBlockII(filters, strides=stride), (2, 8, 8, c_in))
    assert y.shape == shape_out and np.isfinite(y).all()
    core = filters // 4
    assert tuple(block.resize_conv.kernel.shape) == (1, 1, c_in, core)
    assert tuple(block.channel_conv.kernel.shape) == (1, 1, core, core)
    assert tuple(block.spatial.kernel.shape) == (3, 3, 1, 4)
    if shortcut_shape is None:
        assert block.shortcut_conv is None
    else:  # groups = C_in: a 1x1 with C_out / C_in outputs per input channel
        assert isinstance(block.shortcut_conv, sk_layers.GroupedPointwise)
        assert tuple(block.shortcut_conv.kernel.shape) == shortcut_shape


@pytest.mark.parametrize("stride", [1, 2])
def test_grouped_pointwise_equals_a_depthwise_1x1_conv(stride):
    x = np.random.default_rng(5).normal(size=(2, 5, 5, 3)).astype("float32")
    grouped = sk_layers.GroupedPointwise(4, strides=stride)
    y = to_numpy(grouped(x))
    depthwise = keras.layers.DepthwiseConv2D(1, strides=stride, depth_multiplier=4, use_bias=False)
    depthwise.build(x.shape)
    depthwise.kernel.assign(grouped.kernel)
    np.testing.assert_allclose(y, to_numpy(depthwise(x)), atol=1e-6)
    assert y.shape == grouped.compute_output_shape(x.shape)


def test_lst2_block_starts_with_dct_transforms():
    block, _ = built(sk_layers.LSTBlockII(16), (1, 4, 4, 16))
    np.testing.assert_allclose(to_numpy(block.channel_conv.kernel)[0, 0], initializers.dct_matrix(4, 4).T, atol=1e-6)
    np.testing.assert_allclose(to_numpy(block.spatial.kernel)[:, :, 0], initializers.separable_dct_filters(2, 3),
                               atol=1e-6)
    assert block.channel_conv.trainable and block.spatial.trainable  # nothing is frozen


def test_lst1_block_shapes_dense_shortcut_and_dct_start():
    block, y = built(sk_layers.LSTBlockI(8, strides=2), (2, 8, 8, 6))
    assert y.shape == (2, 4, 4, 8)
    assert tuple(block.channel_conv.kernel.shape) == (1, 1, 6, 8)
    np.testing.assert_allclose(to_numpy(block.channel_conv.kernel)[0, 0], initializers.dct_matrix(8, 6).T, atol=1e-6)
    assert tuple(block.resize_conv.kernel.shape) == (1, 1, 32, 8)  # a^2 * C_s = 4 * 8 channels after T_s
    assert tuple(block.shortcut_conv.kernel.shape) == (1, 1, 6, 8)


def test_lst_block_output_is_soft_thresholded_not_rectified():
    _, y = built(sk_layers.LSTBlockII(16, tau=0.0), (2, 4, 4, 16))
    assert (y < 0).any() and (y > 0).any()  # ST keeps signs, unlike ResNet's final ReLU
    _, y = built(sk_layers.LSTBlockII(16, tau=1e6), (2, 4, 4, 16))
    assert not y.any()  # every coefficient inside the dead zone


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(filters=18), "divisible by a\\*a=4"),
        (dict(filters=16, shortcut="zero"), "shortcut='zero'"),
        (dict(filters=16, activation="gelu"), "activation='gelu'"),
        (dict(filters=0), "filters=0"),
        (dict(filters=16, strides=0), "strides=0"),
    ],
)
def test_lst2_block_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        block = sk_layers.LSTBlockII(**kwargs)
        block.build((None, 8, 8, 16))


def test_grouped_shortcut_needs_a_multiple_of_the_input_width():
    with pytest.raises(ValueError, match="multiple of the 12 input channels"):
        sk_layers.LSTBlockII(16, strides=2).build((None, 8, 8, 12))


def test_inverted_block_follows_the_three_changes_of_li_et_al_2020():
    # (2) E = 1: no T_c, one shared filter per channel, width kept; identity residual.
    e1, y = built(sk_layers.InvertedLSTBlock(8, expansion=1), (1, 6, 6, 8))
    assert e1.channel_conv is None and tuple(e1.spatial.kernel.shape) == (3, 3, 1, 1) and e1.residual
    assert y.shape == (1, 6, 6, 8)
    # (3) E > 1 with a stride or a width change: no D and no sum.
    down, y = built(sk_layers.InvertedLSTBlock(12, strides=2, expansion=6), (1, 6, 6, 8))
    assert y.shape == (1, 3, 3, 12) and not down.residual and down.shortcut_conv is None
    assert tuple(down.channel_conv.kernel.shape) == (1, 1, 8, 12)  # C_s = E * C_in / a^2
    assert tuple(down.resize_conv.kernel.shape) == (1, 1, 48, 12)
    # (1) ReLU6 and tau = 1e-8; E > 1 at stride 1, same width: residual kept.
    keep, _ = built(sk_layers.InvertedLSTBlock(8, expansion=6), (1, 6, 6, 8))
    assert keep.residual and keep.tau == 1e-8 and keep.spatial_relu.max_value == 6.0


# Input (2, 8, 8, 8); expected output shape and (trainable, non-trainable) weight counts. A block's BNs
# are two of each (gamma and beta; moving mean and variance), and one training step must move the means.
@pytest.mark.parametrize(
    "name, kwargs, output_shape, counts",
    [
        ("SoftThreshold", dict(tau=0.01), (2, 8, 8, 8), (0, 0)),
        ("SharedSpatialTransform", dict(a=2, kernel_size=5, strides=2), (2, 4, 4, 32), (1, 0)),
        ("SharedSpatialTransform", dict(a=2, kernel_size=3, share=False), (2, 8, 8, 32), (1, 0)),
        ("GroupedPointwise", dict(multiplier=2, strides=2), (2, 4, 4, 16), (1, 0)),
        # T_r, T_c, T_s and the grouped D, each with its BN.
        ("LSTBlockII", dict(filters=32, strides=2, tau=1e-3), (2, 4, 4, 32), (12, 8)),
        # T_c, T_s, T_r and the dense D, each with its BN.
        ("LSTBlockI", dict(filters=8, strides=2, a=3, kernel_size=5), (2, 4, 4, 8), (12, 8)),
        # E > 1 with a stride: T_c, T_s, T_r with their BNs, no D.
        ("InvertedLSTBlock", dict(filters=12, strides=2, expansion=6), (2, 4, 4, 12), (9, 6)),
        # E = 1: no T_c; T_s and T_r with their BNs and the identity residual.
        ("InvertedLSTBlock", dict(filters=8, expansion=1), (2, 8, 8, 8), (6, 4)),
    ],
    ids=["SoftThreshold", "SharedSpatialTransform", "SharedSpatialTransform-unshared", "GroupedPointwise",
         "LSTBlockII", "LSTBlockI", "InvertedLSTBlock", "InvertedLSTBlock-E1"],
)
def test_layer_contract(name, kwargs, output_shape, counts):
    run_layer_test(
        getattr(sk_layers, name), kwargs, input_shape=(2, 8, 8, 8), expected_output_shape=output_shape,
        expected_output_dtype="float32", expected_num_trainable_weights=counts[0],
        expected_num_non_trainable_weights=counts[1], supports_masking=True if name == "SoftThreshold" else None,
        expected_updated_variables=("moving_mean",) if "Block" in name else (),
    )


def test_block_multiply_adds_match_the_formula():
    block, _ = built(sk_layers.LSTBlockII(64, strides=2), (1, 8, 8, 16))
    # T_r 16->16 and T_c 16->16 at 8x8; T_s 16 -> 64 at 4x4 with 3x3 filters; grouped D: one MAC per output.
    expected = 64 * (16 * 16 + 16 * 16) + 16 * 64 * 9 + 16 * 64
    assert block.multiply_adds((8, 8, 16)) == expected

"""The group-lasso regularizers against a numpy reference of the papers' equations.

``strength * sum over groups of eta_G(k)`` with ``eta`` = ``||k(G)||`` ("l2"), ``||k(G)|| / sqrt(|G|)``
("normalized") or ``sqrt(|G|) ||k(G)||`` ("scaled"), ``|G|`` the number of entries of the group; with
``squared=True`` the relaxed counts are squared: the layer's ``(sum_j eta_j)^2`` for kernel and filter groups
(eq. 32) and ``sum_j (sum_n eta_jn)^2`` for the nested groups (eq. 33).
"""

import math
import re

import keras
import numpy as np
import pytest

import sparse_keras
from sparse_keras import testing
from sparse_keras import regularizers
from sparse_keras.regularizers import (
    FilterGroupLasso,
    KernelGroupLasso,
    NestedHalfRing,
    NestedRing,
    SumOfRegularizers,
)

ALL = [KernelGroupLasso, FilterGroupLasso, NestedHalfRing, NestedRing]
RINGS = [NestedHalfRing, NestedRing]
NORMS = ["l2", "normalized", "scaled"]
CONV_SHAPES = [(3, 3, 4, 5), (5, 5, 2, 3), (1, 1, 3, 2)]
FLAT_SHAPES = [(6, 4), (3, 4, 5)]  # Dense (in, out) and Conv1D (k, in, out): kernel and filter groups only


# -- numpy reference ---------------------------------------------------------------------------------
def spec_mask(scheme, s, n):
    """G_n (half rings) or R_n (rings) of an s x s kernel, written from the min/max definition."""
    mask = np.zeros((s, s), dtype=bool)
    for p in range(s):
        for q in range(s):
            if scheme == "half_ring":
                mask[p, q] = min(p, q) < math.ceil(n / 2) or max(p, q) > s - 1 - n // 2
            else:
                mask[p, q] = min(p, q) < n or max(p, q) > s - 1 - n
    return mask


def numpy_depthwise_to_conv(kernel):
    """(kh, kw, in, mult) -> (kh, kw, 1, in * mult); Keras' depthwise output c * mult + m."""
    kh, kw, c_in, mult = kernel.shape
    out = np.zeros((kh, kw, 1, c_in * mult), dtype=kernel.dtype)
    for c in range(c_in):
        for m in range(mult):
            out[:, :, 0, c * mult + m] = kernel[:, :, c, m]
    return out


def reference_groups(kernel, cls):
    """(norms, sizes), each (out, groups per output kernel): the l2 norm and entry count of each group."""
    kernel = np.asarray(kernel, dtype="float64")
    out = kernel.shape[-1]
    if cls is KernelGroupLasso or (cls is FilterGroupLasso and kernel.ndim == 2):
        norms = np.array([[np.sqrt(np.sum(kernel[..., j] ** 2))] for j in range(out)])
        return norms, np.full_like(norms, kernel[..., 0].size)
    if cls is FilterGroupLasso:
        c_in = kernel.shape[-2]
        norms = np.array([[np.sqrt(np.sum(kernel[..., i, j] ** 2)) for i in range(c_in)] for j in range(out)])
        return norms, np.full_like(norms, kernel[..., 0, 0].size)
    scheme = "half_ring" if cls is NestedHalfRing else "ring"
    s, c_in = kernel.shape[0], kernel.shape[2]
    n_groups = s if scheme == "half_ring" else math.ceil(s / 2)
    masks = [spec_mask(scheme, s, n) for n in range(1, n_groups + 1)]
    norms = np.array([[np.sqrt(np.sum(kernel[mask, :, j] ** 2)) for mask in masks] for j in range(out)])
    sizes = np.array([[mask.sum() * c_in for mask in masks]] * out, dtype="float64")
    return norms, sizes


def reference_value(kernel, cls, strength, norm="l2", squared=False, layout="conv"):
    kernel = np.asarray(kernel, dtype="float64")
    if layout == "depthwise":
        kernel = numpy_depthwise_to_conv(kernel)
    norms, sizes = reference_groups(kernel, cls)
    eta = {"l2": norms, "normalized": norms / np.sqrt(sizes), "scaled": norms * np.sqrt(sizes)}[norm]
    if not squared:
        return strength * eta.sum()
    if cls in RINGS:
        return strength * np.sum(eta.sum(axis=1) ** 2)  # eq. 33: each kernel's relaxed size
    return strength * eta.sum() ** 2  # eq. 32: the layer's relaxed count


def numeric_gradient(f, kernel, eps=1e-6):
    kernel = np.asarray(kernel, dtype="float64")
    g = np.zeros_like(kernel)
    for index in np.ndindex(kernel.shape):
        step = np.zeros_like(kernel)
        step[index] = eps
        g[index] = (f(kernel + step) - f(kernel - step)) / (2 * eps)
    return g


# -- backend helpers ---------------------------------------------------------------------------------
to_numpy = testing.to_numpy
grad = testing.gradient


def shapes_for(cls):
    return CONV_SHAPES if cls in RINGS else CONV_SHAPES + FLAT_SHAPES


def variants():
    return [(norm, squared) for norm in NORMS for squared in (False, True)]


# -- value -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", ALL)
def test_value_is_strength_times_the_sum_of_group_norms(cls):
    for shape in shapes_for(cls):
        kernel = np.random.randn(*shape).astype("float32")
        for norm, squared in variants():
            reg = cls(0.3, norm=norm, squared=squared)
            expected = reference_value(kernel, cls, 0.3, norm, squared)
            np.testing.assert_allclose(
                to_numpy(reg(kernel)), expected, rtol=2e-5, err_msg=f"{reg} on shape {shape}"
            )


def test_the_four_groupings_give_different_values_on_the_same_kernel():
    """Guards the reference itself: a test passing with the wrong grouping would show up here."""
    kernel = np.random.randn(3, 3, 4, 5).astype("float32")
    values = {cls.__name__: float(to_numpy(cls(1.0)(kernel))) for cls in ALL}
    assert len({round(v, 4) for v in values.values()}) == 4, values


def test_normalized_and_scaled_weigh_each_group_by_its_entry_count():
    # One 3x3 kernel with one input channel, all ones: half-ring groups have 5, 8, 9 entries.
    kernel = np.ones((3, 3, 1, 1), dtype="float32")
    sizes = np.array([5.0, 8.0, 9.0])
    np.testing.assert_allclose(to_numpy(NestedHalfRing(1.0)(kernel)), np.sqrt(sizes).sum(), rtol=1e-6)
    np.testing.assert_allclose(to_numpy(NestedHalfRing(1.0, norm="normalized")(kernel)), 3.0, rtol=1e-6)
    np.testing.assert_allclose(to_numpy(NestedHalfRing(1.0, norm="scaled")(kernel)), sizes.sum(), rtol=1e-6)
    np.testing.assert_allclose(to_numpy(NestedHalfRing(1.0, squared=True)(kernel)), np.sqrt(sizes).sum() ** 2)


def test_squared_kernel_lasso_squares_the_layer_total_and_rings_square_per_kernel():
    kernel = np.zeros((3, 3, 1, 2), dtype="float32")
    kernel[1, 1, 0, :] = 1.0  # only the centre: in the last half-ring group and the last ring only
    np.testing.assert_allclose(to_numpy(KernelGroupLasso(1.0, squared=True)(kernel)), (1 + 1) ** 2)
    np.testing.assert_allclose(to_numpy(NestedHalfRing(1.0, squared=True)(kernel)), 1**2 + 1**2)
    np.testing.assert_allclose(to_numpy(NestedRing(1.0, squared=True)(kernel)), 1**2 + 1**2)


@pytest.mark.parametrize("cls", ALL)
def test_depthwise_layout_groups_each_depthwise_output_channel(cls):
    kernel = np.random.randn(5, 5, 3, 2).astype("float32")
    for norm, squared in variants():
        reg = cls(0.5, norm=norm, squared=squared, layout="depthwise")
        expected = reference_value(kernel, cls, 0.5, norm, squared, layout="depthwise")
        np.testing.assert_allclose(to_numpy(reg(kernel)), expected, rtol=2e-5, err_msg=repr(reg))


@pytest.mark.parametrize("cls", RINGS)
def test_rings_reject_dense_and_non_square_kernels_naming_the_shape(cls):
    for shape in [(6, 4), (3, 5, 2, 2), (3, 4, 5), (3, 3, 2, 2, 2)]:
        reg = cls(0.1)
        with pytest.raises(ValueError, match=re.escape(str(shape))):
            reg(np.ones(shape, dtype="float32"))
        assert not reg.supports(shape)
    assert cls(0.1).supports((3, 3, 2, 2))


@pytest.mark.parametrize("cls", [KernelGroupLasso, FilterGroupLasso])
def test_kernel_and_filter_lassos_reject_a_vector(cls):
    with pytest.raises(ValueError, match=re.escape("(5,)")):
        cls(0.1)(np.ones((5,), dtype="float32"))


# -- gradients ---------------------------------------------------------------------------------------
def kernel_with_zero_groups(shape=(3, 3, 2, 3)):
    """A random kernel with a zeroed group of each kind the regularizer has (and a whole zero kernel)."""
    kernel = np.random.randn(*shape).astype("float32")
    kernel[..., 0] = 0.0  # a whole output kernel
    kernel[..., 0, 1] = 0.0  # one 2-D filter
    kernel[0, :, :, 2] = 0.0  # G_1 of a half ring (with the column below)
    kernel[:, 0, :, 2] = 0.0
    return kernel


@pytest.mark.parametrize("cls", ALL)
def test_gradient_is_finite_and_zero_at_an_all_zero_kernel(cls):
    kernel = np.zeros((3, 3, 2, 3), dtype="float32")
    for norm, squared in variants():
        reg = cls(0.7, norm=norm, squared=squared)
        g = grad(reg, kernel)
        assert np.all(np.isfinite(g)), repr(reg)
        np.testing.assert_array_equal(g, 0.0, err_msg=repr(reg))
        assert float(to_numpy(reg(kernel))) == 0.0


@pytest.mark.parametrize("cls", ALL)
def test_gradient_with_zero_groups_is_finite_and_matches_the_numeric_gradient_elsewhere(cls):
    kernel = kernel_with_zero_groups()
    zero = kernel == 0
    for norm, squared in variants():
        reg = cls(0.7, norm=norm, squared=squared)
        g = grad(reg, kernel)
        assert np.all(np.isfinite(g)), repr(reg)
        # 0 is the minimum-norm subgradient at a zero entry: the norms' gradients k / ||k(G)|| vanish there.
        np.testing.assert_array_equal(g[zero], 0.0, err_msg=repr(reg))
        numeric = numeric_gradient(lambda k: reference_value(k, cls, 0.7, norm, squared), kernel)
        np.testing.assert_allclose(g[~zero], numeric[~zero], rtol=1e-3, atol=1e-5, err_msg=repr(reg))


@pytest.mark.parametrize("cls", ALL)
def test_gradient_matches_the_numeric_gradient_away_from_zero(cls):
    for shape in [(3, 3, 2, 2), (5, 5, 1, 2)] + ([] if cls in RINGS else [(4, 3)]):
        kernel = np.random.randn(*shape).astype("float32")
        for norm, squared in variants():
            reg = cls(0.7, norm=norm, squared=squared)
            numeric = numeric_gradient(lambda k: reference_value(k, cls, 0.7, norm, squared), kernel)
            np.testing.assert_allclose(
                grad(reg, kernel), numeric, rtol=1e-3, atol=1e-5, err_msg=f"{reg} on shape {shape}"
            )


def test_depthwise_gradient_matches_the_numeric_gradient():
    kernel = np.random.randn(3, 3, 2, 2).astype("float32")
    kernel[..., 1, 0] = 0.0
    for cls in ALL:
        reg = cls(0.7, norm="scaled", layout="depthwise")
        g = grad(reg, kernel)
        numeric = numeric_gradient(
            lambda k: reference_value(k, cls, 0.7, "scaled", layout="depthwise"), kernel
        )
        assert np.all(np.isfinite(g))
        np.testing.assert_allclose(g, numeric, rtol=1e-3, atol=1e-5, err_msg=repr(reg))


# -- mixed precision ---------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("cls", ALL)
def test_half_precision_kernel_gives_a_finite_float32_penalty(cls, dtype):
    # Entries of 30 overflow float16 when squared (900 * 18 > 65504) unless the math runs in float32.
    kernel32 = (30.0 * np.random.randn(3, 3, 2, 4)).astype("float32")
    kernel = keras.ops.cast(kernel32, dtype)
    rounded = to_numpy(keras.ops.cast(kernel, "float32"))
    for norm, squared in variants():
        reg = cls(0.1, norm=norm, squared=squared)
        value = reg(kernel)
        assert keras.backend.standardize_dtype(value.dtype) == "float32", repr(reg)
        assert np.isfinite(to_numpy(value)), repr(reg)
        np.testing.assert_allclose(
            to_numpy(value), reference_value(rounded, cls, 0.1, norm, squared), rtol=1e-4, err_msg=repr(reg)
        )


# -- argument validation -----------------------------------------------------------------------------
@pytest.mark.parametrize("cls", ALL)
def test_bad_arguments_raise_value_error_naming_the_value(cls):
    for strength in (-1.0, -1e-9, float("nan"), float("inf"), "strong", "0.1", None, [0.1]):
        with pytest.raises(ValueError, match=re.escape(f"strength={strength!r}")):
            cls(strength)
    with pytest.raises(ValueError, match="norm='l1'"):
        cls(0.1, norm="l1")
    with pytest.raises(ValueError, match="layout='transposed'"):
        cls(0.1, layout="transposed")
    assert cls(0).strength == 0.0
    assert isinstance(cls(np.float32(0.5)).strength, float)


# -- serialization -----------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", ALL)
def test_config_round_trip(cls):
    reg = cls(0.25, norm="scaled", squared=True, layout="depthwise")
    config = reg.get_config()
    assert config == {"strength": 0.25, "norm": "scaled", "squared": True, "layout": "depthwise"}
    kernel = np.random.randn(3, 3, 2, 2).astype("float32")
    for restored in (
        cls.from_config(config),
        keras.regularizers.deserialize(keras.regularizers.serialize(reg)),
        keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(reg)),
    ):
        assert type(restored) is cls
        assert restored.get_config() == config
        np.testing.assert_allclose(to_numpy(restored(kernel)), to_numpy(reg(kernel)), rtol=1e-6)


def test_for_layout_copies_everything_but_the_layout():
    reg = NestedRing(0.25, norm="normalized", squared=True)
    copy = reg.for_layout("depthwise")
    assert type(copy) is NestedRing and copy is not reg
    assert copy.get_config() == {**reg.get_config(), "layout": "depthwise"}
    assert reg.layout == "conv"


def build_regularized_model():
    inputs = keras.Input((10, 10, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", kernel_regularizer=KernelGroupLasso(1e-2), name="c1")(
        inputs
    )
    x = keras.layers.DepthwiseConv2D(
        5, padding="same", depthwise_regularizer=NestedHalfRing(1e-2, norm="normalized", layout="depthwise")
    )(x)
    ring = NestedRing(1e-2, norm="scaled", squared=True)
    x = keras.layers.Conv2D(5, 5, kernel_regularizer=ring, name="c2")(x)
    x = keras.layers.Conv2D(3, 1, kernel_regularizer=FilterGroupLasso(1e-2, squared=True), name="c3")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    dense_reg = SumOfRegularizers([keras.regularizers.L2(1e-3), KernelGroupLasso(1e-2)])
    outputs = keras.layers.Dense(2, kernel_regularizer=dense_reg, name="head")(x)
    return keras.Model(inputs, outputs)


def test_regularizers_survive_a_keras_save_and_load(tmp_path):
    model = build_regularized_model()
    before = [float(to_numpy(v)) for v in model.losses]
    assert len(before) == 5 and all(v > 0 for v in before)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose([float(to_numpy(v)) for v in loaded.losses], before, rtol=1e-6)
    for name in ("c1", "c2", "c3"):
        original = model.get_layer(name).kernel_regularizer
        restored = loaded.get_layer(name).kernel_regularizer
        assert type(restored) is type(original) and restored.get_config() == original.get_config()
    depthwise = [layer for layer in loaded.layers if isinstance(layer, keras.layers.DepthwiseConv2D)][0]
    assert isinstance(depthwise.depthwise_regularizer, NestedHalfRing)
    assert depthwise.depthwise_regularizer.layout == "depthwise"
    head = loaded.get_layer("head").kernel_regularizer
    assert isinstance(head, SumOfRegularizers)
    assert [type(r) for r in head.regularizers] == [keras.regularizers.L2, KernelGroupLasso]


# -- lookup ------------------------------------------------------------------------------------------
def test_get_accepts_none_and_instances_unchanged():
    assert regularizers.get(None) is None
    reg = NestedRing(0.1)
    assert regularizers.get(reg) is reg
    l2 = keras.regularizers.L2(0.1)
    assert regularizers.get(l2) is l2


@pytest.mark.parametrize(
    "name, cls",
    [
        ("kernel_group_lasso", KernelGroupLasso),
        ("filter_group_lasso", FilterGroupLasso),
        ("nested_half_ring", NestedHalfRing),
        ("nested_ring", NestedRing),
    ],
)
def test_get_by_name_with_arguments_and_as_a_config_dict(name, cls):
    by_name = regularizers.get(name, strength=1e-4, norm="scaled")
    by_dict = regularizers.get({"name": name, "strength": 1e-4, "norm": "scaled"})
    by_keras_dict = regularizers.get(keras.regularizers.serialize(by_name))
    for reg in (by_name, by_dict, by_keras_dict):
        assert type(reg) is cls
        assert reg.get_config() == {"strength": 1e-4, "norm": "scaled", "squared": False, "layout": "conv"}
    assert sparse_keras.regularizers.get(name, strength=0.5).strength == 0.5


def test_get_keras_builtin_names():
    l2 = regularizers.get("l2")
    assert isinstance(l2, keras.regularizers.L2)
    custom = regularizers.get("l2", l2=0.5)
    assert isinstance(custom, keras.regularizers.L2) and custom.get_config()["l2"] == 0.5
    assert isinstance(regularizers.get({"name": "l1", "l1": 0.2}), keras.regularizers.L1)


def test_get_rejects_unknown_identifiers_naming_them():
    with pytest.raises(ValueError, match="'nested_spiral'"):
        regularizers.get("nested_spiral", strength=0.1)
    with pytest.raises(ValueError, match="'name'"):
        regularizers.get({"strength": 0.1})
    with pytest.raises(ValueError, match="42"):
        regularizers.get(42)
    with pytest.raises(ValueError, match="strength"):
        regularizers.get("nested_ring", strength=-1.0)


def test_get_passes_a_callable_through():
    def penalty(x):
        return keras.ops.sum(x)

    assert regularizers.get(penalty) is penalty


# -- SumOfRegularizers -------------------------------------------------------------------------------
def test_sum_of_regularizers_adds_its_parts_and_round_trips():
    kernel = np.random.randn(3, 3, 2, 4).astype("float32")
    parts = [keras.regularizers.L2(1e-2), NestedHalfRing(0.3, norm="scaled")]
    total = SumOfRegularizers(parts + [{"name": "kernel_group_lasso", "strength": 0.2}])
    expected = (
        1e-2 * np.sum(kernel.astype("float64") ** 2)
        + reference_value(kernel, NestedHalfRing, 0.3, "scaled")
        + reference_value(kernel, KernelGroupLasso, 0.2)
    )
    np.testing.assert_allclose(to_numpy(total(kernel)), expected, rtol=2e-5)
    for restored in (
        SumOfRegularizers.from_config(total.get_config()),
        keras.regularizers.deserialize(keras.regularizers.serialize(total)),
    ):
        kinds = [type(r) for r in restored.regularizers]
        assert kinds == [keras.regularizers.L2, NestedHalfRing, KernelGroupLasso]
        np.testing.assert_allclose(to_numpy(restored(kernel)), expected, rtol=2e-5)
    assert regularizers.group_lassos_in(total) == total.regularizers[1:]


def test_sum_of_regularizers_needs_a_non_empty_list():
    with pytest.raises(ValueError, match="non-empty"):
        SumOfRegularizers([])
    with pytest.raises(ValueError, match="non-empty"):
        SumOfRegularizers([None])


# -- training ----------------------------------------------------------------------------------------
def kernel_norms_after_training(regularizer):
    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(8, 3, padding="same", kernel_regularizer=regularizer, name="conv"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(2),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    initial = np.linalg.norm(to_numpy(model.get_layer("conv").kernel).reshape(-1, 8), axis=0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8, 8, 3)).astype("float32")
    y = rng.integers(0, 2, size=(64,))
    history = model.fit(x, y, batch_size=16, epochs=12, verbose=0)  # 48 steps
    assert np.all(np.isfinite(history.history["loss"]))
    final = np.linalg.norm(to_numpy(model.get_layer("conv").kernel).reshape(-1, 8), axis=0)
    return final / initial


def test_training_with_a_strong_kernel_group_lasso_drives_kernels_towards_zero():
    # Same initial weights and data; only the penalty differs. SGD moves each kernel by at most
    # lr * strength = 0.02 towards zero per step, so 48 steps can erase a glorot kernel of norm ~0.7.
    with_lasso = kernel_norms_after_training(KernelGroupLasso(0.2))
    without = kernel_norms_after_training(None)
    assert np.all(without > 0.8), without
    assert np.sum(with_lasso < 0.1) >= 4, with_lasso
    assert np.median(with_lasso) < 0.25 * np.median(without), (with_lasso, without)


def test_get_refuses_a_class_and_extra_arguments_to_a_serialized_regularizer():
    with pytest.raises(ValueError, match="instance"):
        sparse_keras.regularizers.get(sparse_keras.regularizers.KernelGroupLasso)
    serialized = keras.regularizers.serialize(sparse_keras.regularizers.KernelGroupLasso(1e-3))
    with pytest.raises(ValueError, match="strength"):
        sparse_keras.regularizers.get(serialized, strength=1.0)

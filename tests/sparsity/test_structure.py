"""Coupled channel groups: zero a group's slices, shrink, and the outputs stay equal (both backends)."""

import keras
import numpy as np
import pytest

import sparse_keras as sk
from tests.shrinking.test_shrink import assert_same_outputs, randomize_batch_norms

L = keras.layers


def conv_bn(x, filters, kernel=3, name=None, **kwargs):
    x = L.Conv2D(filters, kernel, padding="same", use_bias=False, name=name, **kwargs)(x)
    return L.ReLU(6.0)(L.BatchNormalization()(x))


def plain(x):
    x = conv_bn(x, 8)
    x = L.ZeroPadding2D(1)(x)
    x = L.Cropping2D(1)(x)
    x = L.MaxPooling2D()(conv_bn(x, 8))
    x = L.Dropout(0.2)(x)
    x = L.Conv2D(6, 3, padding="valid", activation="relu")(x)
    return L.Dense(3)(L.GlobalAveragePooling2D()(x))


def depthwise(x):
    x = conv_bn(x, 8, kernel=1)
    x = L.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
    x = L.ReLU()(L.BatchNormalization()(x))
    x = L.DepthwiseConv2D(3, depth_multiplier=2, padding="same")(x)
    x = L.SeparableConv2D(6, 3, padding="same")(x)
    return L.Dense(3)(L.GlobalMaxPooling2D()(x))


def residual(x):
    x = conv_bn(x, 8)
    y = conv_bn(x, 8)
    x = L.Add()([x, conv_bn(y, 8)])
    x = L.Subtract()([x, conv_bn(x, 8)])
    x = L.Maximum()([x, conv_bn(x, 8)])
    return L.Dense(3)(L.GlobalAveragePooling2D()(x))


def squeeze_excite(x):
    x = conv_bn(x, 8)
    s = L.Reshape((1, 1, 8))(L.GlobalAveragePooling2D()(x))
    s = L.Conv2D(4, 1, activation="relu")(s)
    s = L.Conv2D(8, 1, activation="sigmoid")(s)
    x = L.Multiply()([x, s])
    return L.Dense(3)(L.GlobalAveragePooling2D()(conv_bn(x, 6)))


def concat_flatten(x):
    a, b = conv_bn(x, 5, name="a"), conv_bn(x, 7, name="b")
    x = L.Concatenate()([a, L.AveragePooling2D(1)(b)])
    x = L.MaxPooling2D(2)(conv_bn(x, 6, name="c"))
    x = L.Dense(5, activation="relu", name="fc")(L.Flatten()(x))
    return L.Dense(3)(x)


def preprocessing_and_reshape(x):
    x = L.Rescaling(1 / 127.5, offset=-1)(x)
    x = L.Normalization(axis=-1, mean=[0.1, 0.2, 0.3], variance=[1.0, 2.0, 3.0])(x)
    x = conv_bn(x, 8)
    x = L.Reshape((8 * 8, 8))(x)
    x = L.Dense(6, activation="relu")(x)
    return L.Dense(3)(L.Reshape((8 * 8 * 6,))(x))


def scaled_residual(x):
    """InceptionResNetV2's block: ``x + scale * branch`` through the application's own weightless layer."""
    from keras.src.applications.inception_resnet_v2 import CustomScaleLayer

    x = conv_bn(x, 8)
    branch = L.Conv2D(8, 1, name="up")(L.Concatenate()([conv_bn(x, 4), conv_bn(x, 4, kernel=1)]))
    x = L.Activation("relu")(CustomScaleLayer(0.17)([x, branch]))
    return L.Dense(3)(L.GlobalAveragePooling2D()(conv_bn(x, 6)))


BUILDERS = [plain, depthwise, residual, squeeze_excite, concat_flatten, preprocessing_and_reshape, scaled_residual]


def build(builder, shape=(8, 8, 3)):
    inputs = keras.Input(shape)
    model = keras.Model(inputs, builder(inputs), name=builder.__name__)
    randomize_batch_norms(model)
    return model


@pytest.mark.parametrize("builder", BUILDERS, ids=lambda b: b.__name__)
def test_zeroing_coupled_groups_then_shrinking_keeps_outputs(builder):
    model = build(builder)
    groups = sk.structure.coupled_groups(model)
    assert groups.prunable and not groups.unsupported
    zeroed = sk.structure.zero_coupled_groups(model, 0.5, seed=3, groups=groups)
    assert zeroed and all(g.is_zero() for g in zeroed)
    shrunk = sk.shrink(model)
    assert_same_outputs(model, shrunk, (8, 8, 3))
    # Exactly the zeroed slices left (BatchNormalization statistics with them), counted once each.
    assert model.count_params() - shrunk.count_params() == removed_weights(zeroed)


@pytest.mark.parametrize("builder", [depthwise, concat_flatten], ids=lambda b: b.__name__)
def test_zero_groups_masks_leave_out_exactly_the_slices_of_the_groups(builder):
    # zero_groups clears slices in place (views of depthwise kernels, Flatten's spatial copies): the masks
    # it returns must be what the per-slice masks define, and the variables zero exactly off the masks.
    model = build(builder)
    groups = sk.structure.coupled_groups(model)
    chosen = groups.prunable[::2]
    masks = sk.structure.zero_groups(chosen)
    expected = {}
    for group in chosen:
        for s in group.slices:
            if s.trainable:
                expected[s.variable.path] = expected.get(s.variable.path, 1.0) * (1.0 - s.mask())
    assert sorted(masks) == sorted(expected)
    for path, keep in masks.items():
        np.testing.assert_array_equal(keep, expected[path])
    for group in chosen:
        assert group.is_zero()


def removed_weights(groups):
    union = {}
    for group in groups:
        for s in group.slices:
            union[s.variable.path] = np.maximum(union.get(s.variable.path, 0), s.mask())
    return int(sum(m.sum() for m in union.values()))


def test_a_group_lists_every_slice_of_the_channel_through_batch_norm_depthwise_and_the_next_conv():
    model = build(depthwise)
    names = {g.producers: g for g in sk.structure.coupled_groups(model).prunable}
    first = next(g for p, g in names.items() if len(p) == 3)  # the 1x1 conv and the two depthwise convs
    kinds = {(type(s.layer).__name__, s.attr, s.role) for s in first.slices}
    assert ("Conv2D", "kernel", "out") in kinds and ("DepthwiseConv2D", "kernel", "out") in kinds
    assert {("BatchNormalization", a, "norm") for a in ("gamma", "beta", "moving_mean", "moving_variance")} <= kinds
    # The second depthwise (multiplier 2) ties each channel to its two outputs, read by the separable conv.
    assert ("SeparableConv2D", "depthwise_kernel", "in") in kinds


def test_squeeze_excitation_gates_and_residual_adds_join_the_groups_they_multiply_or_add():
    se = {g.producers for g in sk.structure.coupled_groups(build(squeeze_excite)).prunable}
    assert any(len(p) == 2 and any("conv2d" in n for n in p) for p in se)  # the trunk conv and the gate conv
    res = sk.structure.coupled_groups(build(residual))
    widest = max(res.prunable, key=lambda g: len(g.producers))
    assert len(widest.producers) >= 4  # channels tied through Add, Subtract and Maximum


def test_concatenate_offsets_and_flatten_expansions():
    groups = sk.structure.coupled_groups(build(concat_flatten)).prunable
    def inputs_of_c(producer):
        return sorted(int(i) for g in groups if g.producers == (producer,) for s in g.slices if s.layer.name == "c" for i in s.index)

    # Branch b's channels are inputs 5..11 of conv c, after branch a's five.
    assert inputs_of_c("a") == list(range(5)) and inputs_of_c("b") == list(range(5, 12))
    flat = [g for g in groups if g.producers == ("c",)]
    # Each channel before Flatten owns one row of the Dense per spatial position (4 x 4 of them).
    assert len(flat) == 6
    assert all(len(next(s for s in g.slices if s.layer.name == "fc" and s.role == "in").index) == 16 for g in flat)


def test_model_inputs_outputs_and_channel_mixing_layers_are_not_prunable():
    inputs = keras.Input((8, 8, 3))
    x = conv_bn(inputs, 8)
    x = L.LayerNormalization()(x)
    outputs = L.Conv2D(4, 1)(L.Conv2D(6, 1)(x))
    model = keras.Model(inputs, outputs)
    with pytest.warns(UserWarning, match="normalises across channels"):
        groups = sk.structure.coupled_groups(model)
    reasons = {g.reason for g in groups if not g.prunable}
    assert any("model input" in r for r in reasons) and any("model output" in r for r in reasons)
    assert any("LayerNormalization" in r for r in reasons)
    assert [g.producers for g in groups.prunable] == [(model.layers[-2].name,)] * 6
    with pytest.raises(ValueError, match="LayerNormalization"):
        sk.structure.coupled_groups(model, unsupported="raise")


def test_unknown_layers_are_named_and_subclassed_models_told_what_to_do():
    class Odd(keras.layers.Layer):
        def call(self, x):
            return x * 2.0

    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, L.Conv2D(2, 1)(Odd(name="odd")(conv_bn(inputs, 4))))
    with pytest.warns(UserWarning, match="'odd'"):
        groups = sk.structure.coupled_groups(model)
    assert not groups.prunable and "odd" in groups.unsupported

    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.conv = L.Conv2D(2, 1)

        def call(self, x):
            return self.conv(x)

    sub = Sub()
    sub(np.zeros((1, 4, 4, 3), "float32"))
    with pytest.raises(ValueError, match="functional API"):
        sk.structure.coupled_groups(sub)
    with pytest.raises(ValueError, match="unsupported must be one of"):
        sk.structure.coupled_groups(model, unsupported="skip")

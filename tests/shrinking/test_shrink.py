"""shrink(): the smaller dense model computes what the sparse one computes."""

import keras
import numpy as np
import pytest

from sparse_keras import models, prune
from sparse_keras.shrinking import Handler, KeepHandler, handler_for, register, shrink, synthetic


def assert_same_outputs(original, shrunk, input_shape, batch=2):
    x = np.random.default_rng(1).normal(size=(batch, *input_shape)).astype("float32")
    # One compiled step per model: on JAX an eager call would compile every op on its own.
    expected, got = original.predict_on_batch(x), shrunk.predict_on_batch(x)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


def randomize_batch_norms(model, seed=0):
    """Non-trivial statistics, so that BN maps a zero channel to a non-zero constant."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights(
                [rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.2, beta.shape), rng.normal(0, 0.2, mean.shape), rng.uniform(0.5, 1.5, var.shape)]
            )


def set_kernel(layer, fn):
    kernel = np.array(keras.ops.convert_to_numpy(layer.kernel))
    fn(kernel)
    layer.kernel.assign(kernel)


def conv_names(model):
    return [layer.name for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]


# ---------------------------------------------------------------------------------------------------
# channels


def test_dead_output_kernels_leave_with_the_next_layers_inputs():
    model = models.get("plain_cnn", input_shape=(12, 12, 1), widths=(6, 8, 8), kernel_sizes=(3, 3, 3), pool_after=(0,))
    set_kernel(model.get_layer("conv1"), lambda k: k.__setitem__((..., [0, 3]), 0))
    model.get_layer("conv1").bias.assign(np.array([0, 1, 1, 0, 1, 1], "float32"))
    set_kernel(model.get_layer("conv3"), lambda k: k.__setitem__((..., slice(0, 5)), 0))
    model.get_layer("conv3").bias.assign(np.array([0, 0, 0, 0, 0, 1, 1, 1], "float32"))
    shrunk = shrink(model)
    assert shrunk.get_layer("conv1").kernel.shape == (3, 3, 1, 4)
    assert shrunk.get_layer("conv2").kernel.shape == (3, 3, 4, 8)
    assert shrunk.get_layer("conv3").kernel.shape == (3, 3, 8, 3)
    assert shrunk.get_layer("classifier").kernel.shape == (3, 10)
    assert_same_outputs(model, shrunk, (12, 12, 1))
    assert model.get_layer("conv1").kernel.shape == (3, 3, 1, 6)  # the original is untouched


def test_a_non_zero_constant_stays_before_a_padded_conv_but_folds_into_a_dense():
    # relu(bias) of a zero kernel is a constant map; a 'same' 3x3 conv sees it as a map with a zero border,
    # which no bias reproduces, so it must stay; flatten + dense sees one value per row: folded.
    model = models.get("admm_cnn", input_shape=(16, 16, 3))
    set_kernel(model.get_layer("conv1"), lambda k: k.__setitem__((..., [0, 1]), 0))
    model.get_layer("conv1").bias.assign(np.where(np.arange(96) == 0, 0.5, 0).astype("float32"))
    set_kernel(model.get_layer("conv4"), lambda k: k.__setitem__((..., slice(0, 10)), 0))
    model.get_layer("conv4").bias.assign(np.where(np.arange(64) < 5, 0.3, 0).astype("float32"))
    shrunk = shrink(model)
    assert shrunk.get_layer("conv1").kernel.shape[-1] == 95  # channel 0 (constant 0.5) kept, 1 gone
    assert shrunk.get_layer("conv4").kernel.shape[-1] == 54
    assert shrunk.get_layer("fc1").kernel.shape[0] == 54 * 2 * 2  # the 2x2 map of each dropped channel goes
    assert_same_outputs(model, shrunk, (16, 16, 3))


def residual_pair():
    inputs = keras.Input((8, 8, 4))
    a = keras.layers.Conv2D(6, 3, padding="same", use_bias=False, name="a")(inputs)
    b = keras.layers.Conv2D(6, 1, padding="same", use_bias=False, name="b")(inputs)
    x = keras.layers.Add(name="add")([a, b])
    x = keras.layers.ReLU(name="relu")(x)
    x = keras.layers.Conv2D(5, 3, padding="same", name="c")(x)
    outputs = keras.layers.Dense(3, name="head")(keras.layers.GlobalAveragePooling2D(name="gap")(x))
    return keras.Model(inputs, outputs)


def test_channels_shared_by_an_add_go_only_when_dead_on_every_input():
    model = residual_pair()
    set_kernel(model.get_layer("a"), lambda k: k.__setitem__((..., [0, 1]), 0))
    set_kernel(model.get_layer("b"), lambda k: k.__setitem__((..., [1, 2]), 0))
    shrunk = shrink(model)
    assert shrunk.get_layer("a").kernel.shape[-1] == 5  # only channel 1 is dead on both inputs
    assert shrunk.get_layer("b").kernel.shape[-1] == 5
    assert shrunk.get_layer("c").kernel.shape[2] == 5
    assert_same_outputs(model, shrunk, (8, 8, 4))


@pytest.mark.parametrize("zero_batch_norm", [True, False])
def test_a_residual_branch_whose_kernels_are_all_zero_becomes_the_identity_path(zero_batch_norm):
    model = models.get("resnet20", input_shape=(8, 8, 3))
    randomize_batch_norms(model)
    for conv in ("stage1_block2_conv1", "stage1_block2_conv2"):
        set_kernel(model.get_layer(conv), lambda k: k.__setitem__(Ellipsis, 0))
    if zero_batch_norm:  # BN of an all-zero conv with zero shift and mean: the branch adds exactly 0
        for variable in ("beta", "moving_mean"):
            getattr(model.get_layer("stage1_block2_bn2"), variable).assign(np.zeros(16, "float32"))
    shrunk = shrink(model)
    names = {layer.name for layer in shrunk.layers}
    assert not names & {"stage1_block2_conv1", "stage1_block2_bn1", "stage1_block2_conv2", "stage1_block2_bn2"}
    assert "stage1_block2_add" not in names  # a single input left: no Add at all
    assert ("stage1_block2_add_offset" in names) is not zero_batch_norm  # the branch's constant, if any
    assert_same_outputs(model, shrunk, (8, 8, 3))


def test_concatenated_channels_are_removed_segment_by_segment():
    inputs = keras.Input((6, 6, 3))
    a = keras.layers.Conv2D(4, 3, padding="same", name="a")(inputs)
    b = keras.layers.Conv2D(5, 1, name="b")(inputs)
    x = keras.layers.Concatenate(name="cat")([a, b])
    x = keras.layers.MaxPooling2D(name="pool")(x)
    outputs = keras.layers.Conv2D(2, 3, name="out")(x)
    model = keras.Model(inputs, outputs)
    set_kernel(model.get_layer("a"), lambda k: k.__setitem__((..., [0, 3]), 0))
    model.get_layer("a").bias.assign(np.zeros(4, "float32"))
    set_kernel(model.get_layer("b"), lambda k: k.__setitem__(Ellipsis, 0))
    model.get_layer("b").bias.assign(np.array([0, 0, 2, 0, 0], "float32"))  # 'valid' 3x3 reader: folded
    shrunk = shrink(model)
    assert shrunk.get_layer("out").kernel.shape == (3, 3, 2, 2)
    assert "b" not in {layer.name for layer in shrunk.layers} and "cat" not in {layer.name for layer in shrunk.layers}
    assert_same_outputs(model, shrunk, (6, 6, 3))


def test_depthwise_and_separable_convs_lose_channels_with_their_inputs():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(6, 1, name="expand")(inputs)
    x = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="dw")(x)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.SeparableConv2D(4, 3, padding="same", name="sep")(x)
    outputs = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    model = keras.Model(inputs, outputs)  # a fresh BN maps 0 to 0: the dead channels stay zero
    set_kernel(model.get_layer("expand"), lambda k: k.__setitem__((..., [1, 4]), 0))
    model.get_layer("expand").bias.assign(np.where(np.isin(np.arange(6), [1, 4]), 0, 1).astype("float32"))
    shrunk = shrink(model)
    assert shrunk.get_layer("dw").kernel.shape == (3, 3, 4, 2)
    assert shrunk.get_layer("sep").depthwise_kernel.shape == (3, 3, 8, 1)
    assert_same_outputs(model, shrunk, (8, 8, 3))


def test_channel_multiple_keeps_multiples_of_8_and_stays_exact():
    model = models.get("plain_cnn", input_shape=(8, 8, 1), widths=(20, 24), kernel_sizes=(3, 3), pool_after=())
    set_kernel(model.get_layer("conv1"), lambda k: k.__setitem__((..., slice(0, 7)), 0))
    set_kernel(model.get_layer("conv2"), lambda k: k.__setitem__((..., slice(0, 20)), 0))
    plain, rounded = shrink(model), shrink(model, channel_multiple=8)
    assert [plain.get_layer(n).kernel.shape[-1] for n in ("conv1", "conv2")] == [13, 4]
    assert [rounded.get_layer(n).kernel.shape[-1] for n in ("conv1", "conv2")] == [16, 8]
    assert_same_outputs(model, rounded, (8, 8, 1))


def test_tau_equals_thresholding_first():
    model = models.get("plain_cnn", input_shape=(8, 8, 1), widths=(6, 6), kernel_sizes=(3, 3), pool_after=())
    set_kernel(model.get_layer("conv1"), lambda k: k.__setitem__((..., [2, 5]), 1e-5))
    model.get_layer("conv1").bias.assign(np.zeros(6, "float32"))
    shrunk = shrink(model, tau=1e-3)
    assert shrunk.get_layer("conv1").kernel.shape[-1] == 4
    prune.threshold(model, 1e-3, scheme="kernel")
    assert_same_outputs(model, shrunk, (8, 8, 1))


# ---------------------------------------------------------------------------------------------------
# kernel sizes


def single_conv(size, strides, padding, input_size, width=4):
    inputs = keras.Input((input_size, input_size, 2))
    outputs = keras.layers.Conv2D(width, size, strides=strides, padding=padding, name="conv")(inputs)
    return keras.Model(inputs, keras.layers.Conv2D(3, 1, name="reader")(outputs))


@pytest.mark.parametrize("strides", [1, 2])
@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("input_size", [9, 10])
@pytest.mark.parametrize(("scheme", "zeroed", "size"), [("half_ring", 1, 4), ("half_ring", 2, 3), ("half_ring", 3, 2), ("ring", 1, 3)])
def test_kernels_crop_to_their_learned_size_with_the_padding_that_keeps_outputs(strides, padding, input_size, scheme, zeroed, size):
    from sparse_keras.ops import groups

    model = single_conv(5, strides, padding, input_size)
    outer = groups.nested_masks(scheme, 5)[zeroed - 1]
    set_kernel(model.get_layer("conv"), lambda k: k.__setitem__((outer,), 0))
    shrunk = shrink(model)
    assert shrunk.get_layer("conv").kernel.shape[:2] == (size, size)
    assert_same_outputs(model, shrunk, (input_size, input_size, 2))


def test_odd_centred_crops_keep_keras_same_padding_without_extra_layers():
    model = single_conv(5, 1, "same", 8)
    outer_ring = np.ones((5, 5), bool)
    outer_ring[1:4, 1:4] = False
    set_kernel(model.get_layer("conv"), lambda k: k.__setitem__((outer_ring,), 0))
    shrunk = shrink(model)
    assert shrunk.get_layer("conv").padding == "same"
    assert len(shrunk.layers) == len(model.layers)


def mixed_size_model(reader="conv"):
    inputs = keras.Input((8, 8, 2))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    if reader == "conv":
        x = keras.layers.Conv2D(3, 3, padding="same", name="reader")(x)
    else:
        x = keras.layers.Add(name="add")([x, keras.layers.Conv2D(4, 1, name="side")(inputs)])
    model = keras.Model(inputs, x)
    # Output kernels 0 and 2 shrink to their 1x1 centre (ring scheme), 1 and 3 keep 3x3.
    def keep_centre(kernel):
        centre = kernel[1, 1, :, [0, 2]].copy()
        kernel[..., [0, 2]] = 0
        kernel[1, 1, :, [0, 2]] = centre

    set_kernel(model.get_layer("conv"), keep_centre)
    return model


@pytest.mark.parametrize("form", ["grouped", "masked", "auto"])
def test_mixed_sizes_become_parallel_convs_or_one_masked_conv(form):
    model = mixed_size_model()
    shrunk = shrink(model, mixed_sizes=form, measure_batch=2)
    names = {layer.name for layer in shrunk.layers}
    chosen = shrunk.shrink_choices.get("conv", (form,))[0]
    assert ("conv_concat" in names) == (chosen == "grouped")
    if chosen == "grouped":
        assert shrunk.get_layer("conv_1x1_1_1").kernel.shape == (1, 1, 2, 2)
        assert shrunk.get_layer("conv_3x3_0_0").kernel.shape == (3, 3, 2, 2)
    assert_same_outputs(model, shrunk, (8, 8, 2))


def test_mixed_sizes_feeding_an_add_stay_in_one_conv_to_keep_channel_order():
    model = mixed_size_model(reader="add")
    shrunk = shrink(model, mixed_sizes="grouped")
    assert "conv_concat" not in {layer.name for layer in shrunk.layers}
    assert_same_outputs(model, shrunk, (8, 8, 2))


# ---------------------------------------------------------------------------------------------------
# model families


@pytest.mark.parametrize(("name", "input_shape"), [("resnet20", (8, 8, 3)), ("plain_cnn", (12, 12, 1)), ("admm_cnn", (16, 16, 3)), ("nin", (8, 8, 3))])
def test_library_models_with_zeroed_structures_shrink_exactly(name, input_shape):
    model = models.get(name, input_shape=input_shape)
    randomize_batch_norms(model)
    synthetic.zero_structures(model, channel_fraction=0.5, shrink_fraction=0.5, seed=3)
    shrunk = shrink(model, mixed_sizes="grouped")
    assert shrunk.count_params() < 0.8 * model.count_params()
    assert_same_outputs(model, shrunk, input_shape)
    again = shrink(shrunk, mixed_sizes="grouped")  # nothing left to remove
    assert again.count_params() == shrunk.count_params()


# keras.applications models only on TensorFlow: the graph logic is backend-independent (the library models
# cover it on JAX), while JAX compiles each of their ~150 differently shaped initialisations one by one.
applications = pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="test-time budget on JAX")


@applications
def test_mobilenet_v2_with_zeroed_structures_shrinks_exactly():
    model = keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, weights=None, classes=10)
    randomize_batch_norms(model)
    synthetic.zero_structures(model, channel_fraction=0.5, shrink_fraction=0.5, seed=4)
    shrunk = shrink(model)
    assert shrunk.count_params() < 0.8 * model.count_params()
    assert_same_outputs(model, shrunk, (32, 32, 3))


@applications
@pytest.mark.slow
def test_resnet50_with_zeroed_structures_shrinks_exactly():
    model = keras.applications.ResNet50(input_shape=(32, 32, 3), weights=None, classes=10)
    randomize_batch_norms(model)
    synthetic.zero_structures(model, channel_fraction=0.5, shrink_fraction=0.3, seed=5)
    shrunk = shrink(model, mixed_sizes="masked")
    assert shrunk.count_params() < 0.7 * model.count_params()
    assert_same_outputs(model, shrunk, (32, 32, 3))


def test_sequential_models_shrink_too():
    model = keras.Sequential(
        [keras.Input((6, 6, 2)), keras.layers.Conv2D(4, 3, name="c"), keras.layers.Flatten(name="f"), keras.layers.Dense(2, name="d")]
    )
    set_kernel(model.get_layer("c"), lambda k: k.__setitem__((..., 0), 0))
    shrunk = shrink(model)
    assert shrunk.get_layer("d").kernel.shape == (3 * 4 * 4, 2)
    assert_same_outputs(model, shrunk, (6, 6, 2))


# ---------------------------------------------------------------------------------------------------
# handlers and errors


def test_a_layer_without_handler_is_kept_whole_with_every_input_channel():
    inputs = keras.Input((6, 6, 2))
    x = keras.layers.Conv2D(4, 3, padding="same", name="c")(inputs)
    x = keras.layers.LayerNormalization(name="ln")(x)  # mixes channels: no handler
    outputs = keras.layers.Conv2D(2, 1, name="d")(x)
    model = keras.Model(inputs, outputs)
    set_kernel(model.get_layer("c"), lambda k: k.__setitem__((..., 0), 0))
    assert isinstance(handler_for(model.get_layer("ln")), KeepHandler)
    shrunk = shrink(model)
    assert shrunk.get_layer("c").kernel.shape[-1] == 4
    assert_same_outputs(model, shrunk, (6, 6, 2))


def test_new_layer_types_plug_in_through_the_registry():
    class Scale(keras.layers.Layer):
        def call(self, x):
            return 2.0 * x

    @register(Scale)
    class ScaleHandler(Handler):
        order = "same"

    layer = Scale()
    assert isinstance(handler_for(layer), ScaleHandler)
    with pytest.raises(ValueError, match="Handler subclass"):
        register(Scale)(object)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"tau": -1.0}, "tau"), ({"mixed_sizes": "fast"}, "mixed_sizes"), ({"channel_multiple": 0}, "channel_multiple"), ({"scheme": "x"}, "scheme")],
)
def test_bad_arguments_are_named(kwargs, match):
    model = single_conv(3, 1, "same", 6)
    with pytest.raises(ValueError, match=match):
        shrink(model, **kwargs)


def test_a_subclassed_model_is_refused():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.conv = keras.layers.Conv2D(2, 3)

        def call(self, x):
            return self.conv(x)

    net = Net()
    net(np.zeros((1, 5, 5, 1), "float32"))
    with pytest.raises(ValueError, match="no functional graph"):
        shrink(net)

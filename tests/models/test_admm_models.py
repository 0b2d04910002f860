"""The ADMM paper's baselines (Kiaee et al. 2016 Table 1): shapes, filter totals, parameter counts."""

import functools

import keras
import numpy as np
import pytest

from sparse_keras import models
from sparse_keras.models import admm_paper

NAMES = ("admm_cnn", "admm_cnn_lowrank", "nin", "nin_lowrank")
LOW_RANK = ("admm_cnn_lowrank", "nin_lowrank")
CONFIGS = (((32, 32, 3), 10), ((32, 32, 3), 100), ((28, 28, 1), 10))  # CIFAR-10, CIFAR-100, Fashion-MNIST

# Filter totals of the sparsified layers, copied from the spec / seed Table 3 footnotes (do not compute them).
SPEC_FILTER_TOTALS = {
    "nin": "576-18432-36864-36864",
    "nin_lowrank": "288-288-9216-9216-18432-18432-18432-18432",
    "admm_cnn": "288-12288-32768-16384-256",
    "admm_cnn_lowrank": "144-144-6144-6144-16384-16384-8192-8192-256",
}


def conv(kh, kw, cin, cout):
    """Parameters of a conv with bias."""
    return kh * kw * cin * cout + cout


def dense(fan_in, units):
    return fan_in * units + units


def lowrank(cin, cout):
    """A 1x3 and a 3x1 conv with bias, each with half of ``cout`` outputs."""
    return conv(1, 3, cin, cout // 2) + conv(3, 1, cin, cout // 2)


def nin_params(channels, classes, split):
    spatial = lowrank if split else (lambda cin, cout: conv(3, 3, cin, cout))
    return (
        spatial(channels, 192)  # conv1
        + conv(1, 1, 192, 160)  # conv2
        + conv(1, 1, 160, 96)  # conv3
        + spatial(96, 192)  # conv4
        + spatial(192, 192)  # conv5
        + conv(1, 1, 192, 192)  # conv6
        + conv(1, 1, 192, 192)  # conv7
        + spatial(192, 192)  # conv8
        + conv(1, 1, 192, 192)  # conv9
        + conv(1, 1, 192, classes)  # conv10
    )


def cnn_params(channels, classes, split, side):
    spatial = lowrank if split else (lambda cin, cout: conv(3, 3, cin, cout))
    return (
        spatial(channels, 96)  # conv1
        + spatial(96, 128)  # conv2
        + spatial(128, 256)  # conv3
        + spatial(256, 64)  # conv4
        + dense(side * side * 64, 256)  # fc1: three 2x2 pools leave side = 4 on 32x32, 3 on 28x28
        + dense(256, classes)  # fc2
    )


# The arithmetic above, per model and CONFIGS entry, and its value worked out on paper: the literals pin the
# helpers down, the helpers explain the literals. Going to 100 classes adds 90 * (192 + 1) weights to NIN's
# conv10 and 90 * (256 + 1) to the CNN's fc2; going to one input channel removes 2 * 9 * 192 (NIN), 2 * 2 * 3 * 96
# (low-rank NIN), 2 * 9 * 96 (CNN) or 2 * 2 * 3 * 48 (low-rank CNN) conv1 weights and, for the CNN,
# (1024 - 576) * 256 fc1 weights.
PARAMS = {
    "nin": (
        [nin_params(3, 10, False), nin_params(3, 100, False), nin_params(1, 10, False)],
        [994_826, 1_012_196, 991_370],
    ),
    "nin_lowrank": (
        [nin_params(3, 10, True), nin_params(3, 100, True), nin_params(1, 10, True)],
        [438_410, 455_780, 437_258],
    ),
    "admm_cnn": (
        [cnn_params(3, 10, False, side=4), cnn_params(3, 100, False, side=4), cnn_params(1, 10, False, side=3)],
        [821_066, 844_196, 704_650],
    ),
    "admm_cnn_lowrank": (
        [cnn_params(3, 10, True, side=4), cnn_params(3, 100, True, side=4), cnn_params(1, 10, True, side=3)],
        [450_698, 473_828, 335_434],
    ),
}


# On JAX every new kernel shape costs a compile of the random initialiser, which would dominate the run
# time if every test built every model with it. So the structural checks share cached builds with zero
# kernels, numerical checks draw their random weights with numpy, and only the initialiser tests use it.
@functools.lru_cache(maxsize=None)
def _model(name, input_shape=(32, 32, 3), classes=10):
    return models.get(name, num_classes=classes, input_shape=input_shape, kernel_initializer="zeros")


def _with_random_weights(name):
    model = models.get(name, kernel_initializer="zeros")
    rng = np.random.default_rng(2)
    model.set_weights([rng.normal(0.0, 0.05, w.shape).astype(w.dtype) for w in model.get_weights()])
    return model


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


def _filters(layer):
    """2-D filters of a conv kernel (in * out), or output columns of a Dense kernel."""
    shape = tuple(layer.kernel.shape)
    return shape[2] * shape[3] if len(shape) == 4 else shape[1]


# -- registry, shapes and parameter counts ---------------------------------------------------------------
def test_registry_lists_the_four_models():
    assert set(NAMES) <= set(models.available())


@pytest.mark.parametrize("name", NAMES)
def test_output_shape_and_parameter_count(name):
    by_hand, literal = PARAMS[name]
    assert by_hand == literal
    for (input_shape, classes), expected in zip(CONFIGS, literal):
        model = _model(name, input_shape, classes)
        assert model.name == name
        assert tuple(model.output_shape) == (None, classes), (input_shape, classes)
        assert model.count_params() == expected, (input_shape, classes)


def test_nin_pools_to_16_then_8_and_conv10_keeps_its_relu():
    model = _model("nin")
    assert tuple(model.get_layer("pool1").output.shape) == (None, 16, 16, 96)
    assert tuple(model.get_layer("pool2").output.shape) == (None, 8, 8, 192)
    assert model.get_layer("conv10").activation is keras.activations.relu
    assert model.get_layer("dropout1").rate == model.get_layer("dropout2").rate == 0.5
    assert models.get("nin", final_relu=False, kernel_initializer="zeros").get_layer("conv10").activation is keras.activations.linear


def test_custom_cnn_pools_after_conv1_to_conv3_and_flattens_to_1024_or_576():
    model = _model("admm_cnn")
    assert [model.get_layer(f"conv{i}").output.shape[1] for i in range(1, 5)] == [32, 16, 8, 4]
    assert model.get_layer("fc1").kernel.shape == (1024, 256)
    assert _model("admm_cnn", (28, 28, 1)).get_layer("fc1").kernel.shape == (576, 256)
    assert not any(isinstance(layer, keras.layers.Dropout) for layer in model.layers)
    assert models.get("admm_cnn", dropout=0.3, kernel_initializer="zeros").get_layer("dropout").rate == 0.3


# -- the paper's sparsified layers ----------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_sparsified_layers_are_the_papers(name):
    model = _model(name)
    selected = admm_paper.sparsified_layers(name)
    totals = [_filters(model.get_layer(layer)) for layer in selected]
    assert totals == [int(n) for n in SPEC_FILTER_TOTALS[name].split("-")]
    # Exactly the spatial convs (3x3, or their 1x3 / 3x1 halves) and fc1: no 1x1 mlpconv, no classifier.
    spatial = {(3, 3), (1, 3), (3, 1)}
    expected = [
        layer.name
        for layer in model.layers
        if (isinstance(layer, keras.layers.Conv2D) and tuple(layer.kernel_size) in spatial) or layer.name == "fc1"
    ]
    assert selected == expected
    # A fresh list, so a caller editing it cannot change the paper's selection.
    selected.append("conv10")
    assert admm_paper.sparsified_layers(name) == expected


def test_unknown_model_name_is_named():
    with pytest.raises(ValueError, match="model_name='resnet20'"):
        admm_paper.sparsified_layers("resnet20")


# -- low-rank structure ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", LOW_RANK)
def test_low_rank_branches_are_parallel_halves(name):
    model = _model(name)
    bases = [layer[: -len("_h")] for layer in admm_paper.sparsified_layers(name) if layer.endswith("_h")]
    split = ["conv1", "conv4", "conv5", "conv8"] if name == "nin_lowrank" else ["conv1", "conv2", "conv3", "conv4"]
    assert bases == split
    for base in bases:
        h, v = model.get_layer(f"{base}_h"), model.get_layer(f"{base}_v")
        cin, half = h.kernel.shape[2], h.kernel.shape[3]
        assert tuple(h.kernel.shape) == (1, 3, cin, half)
        assert tuple(v.kernel.shape) == (3, 1, cin, half)
        assert h.use_bias and v.use_bias
        # Linear branches on the same input: the ReLU comes after the concatenation.
        assert h.activation is keras.activations.linear and v.activation is keras.activations.linear
        assert h.input is v.input
        concat = model.get_layer(f"{base}_concat")
        assert concat.output.shape[-1] == 2 * half
        assert model.get_layer(f"{base}_relu").input is concat.output


def test_low_rank_output_is_relu_of_concatenated_branches():
    model = _with_random_weights("admm_cnn_lowrank")
    probe = keras.Model(model.input, [model.get_layer(n).output for n in ("conv2_h", "conv2_v", "conv2_relu")])
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")
    h, v, out = (_numpy(t) for t in probe(x))
    np.testing.assert_allclose(out, np.maximum(np.concatenate([h, v], axis=-1), 0.0), rtol=1e-6, atol=1e-6)
    assert (h < 0).any() and (v < 0).any()  # so the check above really tells ReLU-then-concat apart


# -- initialisation and forward pass -------------------------------------------------------------------
def test_kernels_start_from_normal_with_std_0_05_and_biases_from_zero():
    # The CNNs take their initialisers from the same factory, so NIN stands for all four here.
    model = models.get("nin")
    for layer in model.layers:
        if hasattr(layer, "kernel"):
            kernel = _numpy(layer.kernel)
            if kernel.size >= 10_000:  # enough samples for a loose statistical bound
                assert abs(kernel.std() - 0.05) < 0.005, layer.name
                assert abs(kernel.mean()) < 0.005, layer.name
            assert not _numpy(layer.bias).any(), layer.name
    # Same-shaped kernels must still differ: one shared seed=None initialiser would repeat its values.
    assert not np.array_equal(_numpy(model.get_layer("conv6").kernel), _numpy(model.get_layer("conv7").kernel))
    kernel = _numpy(models.get("nin", init_stddev=0.01).get_layer("conv5").kernel)
    assert abs(kernel.std() - 0.01) < 0.001


def test_kernel_initializer_replaces_the_normal_with_a_copy_per_layer():
    shared = keras.initializers.RandomNormal(stddev=0.2)  # seed=None: reused as is, it would repeat kernels
    model = models.get("nin", kernel_initializer=shared)
    conv6, conv7 = (_numpy(model.get_layer(n).kernel) for n in ("conv6", "conv7"))
    assert not np.array_equal(conv6, conv7)
    assert abs(conv6.std() - 0.2) < 0.02
    with pytest.raises(ValueError, match="init_stddev=0.1"):
        models.get("admm_cnn", init_stddev=0.1, kernel_initializer="he_normal")


def test_forward_pass():
    x = np.random.default_rng(1).normal(size=(2, 32, 32, 3)).astype("float32")
    for name in NAMES:
        model = _with_random_weights(name)
        for logits in (model.predict(x, verbose=0), _numpy(model(x, training=True))):
            assert logits.shape == (2, 10), name
            assert np.isfinite(logits).all() and logits.any(), name


# -- argument errors -----------------------------------------------------------------------------------
def test_bad_arguments_are_named():
    for name in NAMES:
        with pytest.raises(ValueError, match=r"input_shape=\(784,\)"):
            models.get(name, input_shape=(784,))
        with pytest.raises(ValueError, match="init_stddev=0"):
            models.get(name, init_stddev=0)
        with pytest.raises(ValueError, match="dropout=1.5"):
            models.get(name, dropout=1.5)
    with pytest.raises(ValueError, match=r"input_shape=\(6, 6, 1\)"):
        models.get("admm_cnn", input_shape=(6, 6, 1))

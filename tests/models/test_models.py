"""The model registry and the CIFAR ResNets."""

import keras
import numpy as np
import pytest

import sparse_keras
from sparse_keras import models
from sparse_keras.models import registry
from sparse_keras.models import resnet_cifar

CIFAR_RESNETS = ("resnet20", "resnet32", "resnet44", "resnet56", "resnet110")


# -- registry ----------------------------------------------------------------------------------------
def test_available_lists_the_cifar_resnets():
    assert set(CIFAR_RESNETS) <= set(models.available())
    assert models.available() == sorted(models.available())


def test_unknown_name_lists_the_known_names():
    with pytest.raises(ValueError, match="resnet21") as info:
        models.get("resnet21")
    for name in CIFAR_RESNETS:
        assert name in str(info.value)


@pytest.mark.parametrize("num_classes", [0, -3, 2.5, "10", True, None])
def test_bad_num_classes_is_named(num_classes):
    with pytest.raises(ValueError, match=f"num_classes={num_classes!r}"):
        models.get("resnet20", num_classes=num_classes)


@pytest.mark.parametrize("input_shape", [(), (32, 0, 3), (32, -1, 3), (32.0, 32, 3), 32, None])
def test_bad_input_shape_is_named(input_shape):
    with pytest.raises(ValueError, match="input_shape="):
        models.get("resnet20", input_shape=input_shape)


def test_resnet_needs_image_rank():
    with pytest.raises(ValueError, match=r"input_shape=\(784,\)"):
        models.get("resnet20", input_shape=(784,))


@pytest.mark.parametrize("depth", [0, 19, 21, 2, 20.0])
def test_bad_depth_is_named(depth):
    with pytest.raises(ValueError, match=f"depth={depth!r}"):
        resnet_cifar.resnet_cifar(depth)


def test_register_adds_a_builder_and_refuses_a_clash():
    name = "test_models_tiny"

    @models.register(name)
    def tiny(num_classes, input_shape):
        inputs = keras.Input(input_shape)
        x = keras.layers.Flatten()(inputs)
        return keras.Model(inputs, keras.layers.Dense(num_classes)(x))

    try:
        assert name in models.available()
        assert models.get(name, num_classes=3, input_shape=(4, 4, 1)).output.shape == (None, 3)
        with pytest.raises(ValueError, match=name):
            models.register(name)(lambda num_classes, input_shape: None)
    finally:
        registry._BUILDERS.pop(name)


@pytest.mark.parametrize("name", ["", None, 3])
def test_register_rejects_bad_names(name):
    with pytest.raises(ValueError, match="name="):
        models.register(name)


# -- architecture ------------------------------------------------------------------------------------
def test_resnet20_parameter_count_by_hand():
    def conv(k, c_in, c_out):  # no bias: BN follows
        return k * k * c_in * c_out

    def bn(c):  # gamma, beta, moving mean, moving variance
        return 4 * c

    def block(c_in, c_out):
        count = conv(3, c_in, c_out) + bn(c_out) + conv(3, c_out, c_out) + bn(c_out)
        if c_in != c_out:  # 1x1 stride-2 projection shortcut + BN
            count += conv(1, c_in, c_out) + bn(c_out)
        return count

    stem = conv(3, 3, 16) + bn(16)  # 432 + 64
    stage1 = 3 * block(16, 16)  # 3 * 4736
    stage2 = block(16, 32) + 2 * block(32, 32)  # 14720 + 2 * 18688
    stage3 = block(32, 64) + 2 * block(64, 64)  # 58112 + 2 * 74240
    classifier = 64 * 10 + 10
    expected = stem + stage1 + stage2 + stage3 + classifier
    assert expected == 274042  # the arithmetic above, written out: ~0.27M as in He et al. table 6

    model = models.get("resnet20", num_classes=10)
    assert model.count_params() == expected
    # BN moving statistics are the only non-trainable weights: 2 per channel of the 19 + 2 BN layers.
    bn_channels = 16 + 3 * 2 * 16 + (2 * 32 + 32) + 2 * 2 * 32 + (2 * 64 + 64) + 2 * 2 * 64
    assert sum(int(np.prod(w.shape)) for w in model.non_trainable_weights) == 2 * bn_channels


@pytest.mark.parametrize("name,depth", [("resnet20", 20), ("resnet32", 32), ("resnet56", 56)])
def test_depth_counts_weighted_layers(name, depth):
    model = models.get(name)
    kernels = [layer for layer in model.layers if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense))]
    shortcuts = [layer for layer in kernels if layer.name.endswith("_shortcut_conv")]
    assert len(kernels) - len(shortcuts) == depth
    assert [layer.name for layer in shortcuts] == ["stage2_block1_shortcut_conv", "stage3_block1_shortcut_conv"]


def test_layer_names_and_configuration():
    model = models.get("resnet20")
    conv = model.get_layer("stage2_block1_conv1")
    assert conv.strides == (2, 2) and conv.padding == "same" and not conv.use_bias
    assert model.get_layer("stage2_block1_shortcut_conv").kernel_size == (1, 1)
    bn = model.get_layer("stage3_block3_bn2")
    assert bn.epsilon == pytest.approx(1e-5) and bn.momentum == pytest.approx(0.9)
    assert model.get_layer("classifier").units == 10
    assert model.name == "resnet20"


def test_plain_has_no_shortcuts():
    model = models.get("resnet20", plain=True)
    assert model.name == "plain20"
    assert not [layer for layer in model.layers if isinstance(layer, keras.layers.Add)]
    assert not [layer for layer in model.layers if "shortcut" in layer.name]
    shortcut_params = (16 * 32 + 4 * 32) + (32 * 64 + 4 * 64)
    assert model.count_params() == models.get("resnet20").count_params() - shortcut_params


@pytest.mark.parametrize("name", CIFAR_RESNETS)
def test_output_shape(name):
    model = models.get(name, num_classes=7)
    assert model.output.shape == (None, 7)
    assert model.get_layer("stage3_block1_conv1").output.shape == (None, 8, 8, 64)


def test_forward_pass_on_fashion_mnist_shape():
    model = models.get("resnet20", num_classes=10, input_shape=(28, 28, 1))
    x = np.random.default_rng(0).normal(size=(2, 28, 28, 1)).astype("float32")
    logits = keras.ops.convert_to_numpy(model(x, training=False))
    assert logits.shape == (2, 10)
    assert np.all(np.isfinite(logits))
    # Same padding halves 28 -> 14 -> 7 without dropping rows.
    assert model.get_layer("stage3_block3_relu2").output.shape == (None, 7, 7, 64)


def test_one_training_step_with_nested_half_ring():
    model = models.get("resnet20", num_classes=10, input_shape=(16, 16, 3))
    sparse_keras.regularize(model, sparse_keras.regularizers.NestedHalfRing(1e-4))
    # 19 3x3 convs and the 2 1x1 shortcuts (a 1x1 kernel is one half-ring group); the classifier is left out.
    assert len(model.losses) == 21
    model.compile(
        optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    x = np.random.default_rng(0).normal(size=(4, 16, 16, 3)).astype("float32")
    y = np.arange(4) % 10
    loss = model.train_on_batch(x, y)
    assert np.isfinite(loss)

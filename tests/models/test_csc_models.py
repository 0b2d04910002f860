"""SDNet models: layout, parameter counts against the official models, configs build them."""

import importlib
import pathlib

import keras
import numpy as np
import pytest

from sparse_keras import models
from sparse_keras.layers import CSCConv2D
from sparse_keras.layers import csc

# Model structure and parameter counts do not depend on the backend; building these ResNet-sized models
# eagerly is several times slower on JAX/CPU than on TensorFlow, so they are checked once, on TensorFlow
# (the sdnet18 config test and every layer test run on both backends).
once = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="backend-independent model structure, checked on TensorFlow"
)
# Structure and parameter-count tests need no accurate step size: one power iteration per layer keeps
# the builds of the 17-CSC-layer models quick.
QUICK = {"csc_kwargs": {"power_iterations": 1}}
CONFIGS = sorted(p.stem for p in pathlib.Path(__file__).parents[2].joinpath("configs", "csc").glob("*.py")
                 if p.stem not in ("__init__", "base"))


CONFIG_PARAMS = {  # the parameter counts the configs' headers state
    "resnet18_cifar10": 11_173_962,
    "sdnet18_cifar10": 11_173_962,
    "sdnet18_cifar100": 11_220_132,
    "sdnet18_all_cifar10": 11_173_962,
    "sdnet18_all_cifar100": 11_220_132,
    "sdnet18_all_noshortcut_cifar10": 11_000_138,  # no shortcut: no 1x1 projections either
    "sdnet18_imagenet": 11_689_512,
}


def trainable_params(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


@once
@pytest.mark.parametrize(
    "name, num_classes, expected",
    [
        ("sdnet18", 10, 11_173_962),  # the official SDNet-18 on CIFAR-10
        ("resnet18_cifar", 10, 11_173_962),  # a CSC layer has exactly the kernel of the conv it replaces
        ("sdnet18", 100, 11_220_132),
    ],
)
def test_cifar_parameter_counts_match_the_official_models(name, num_classes, expected):
    assert trainable_params(models.get(name, num_classes=num_classes, **(QUICK if "sdnet" in name else {}))) == expected


@once
def test_sdnet18_has_one_csc_layer_followed_by_bn_and_no_relu():
    model = models.get("sdnet18", input_shape=(16, 16, 3), **QUICK)
    assert [layer.name for layer in csc.csc_layers(model)] == ["stem_csc"]
    stem = model.get_layer("stem_csc")
    assert (stem.kernel_size, stem.strides, stem.n_iter, stem.lam_value) == (3, 1, 2, 0.1)
    assert model.get_layer("stem_bn").input is stem.output
    assert model.get_layer("stage1_block1_conv1").input is model.get_layer("stem_bn").output


@once
def test_sdnet18_all_makes_every_3x3_conv_a_csc_layer():
    model = models.get("sdnet18_all", input_shape=(16, 16, 3), **QUICK)
    layers = csc.csc_layers(model)
    assert len(layers) == 1 + 16
    assert [layer.strides for layer in layers].count(2) == 3
    assert trainable_params(model) == 11_173_962
    assert not any(isinstance(layer, keras.layers.ReLU) and layer.name.endswith("relu1") for layer in model.layers)
    assert model.get_layer("stage4_block1_csc1").output.shape == (None, 2, 2, 512)


@once
def test_imagenet_stems():
    # Parameter counts do not depend on the image size: a 64x64 image keeps the build cheap.
    sdnet = models.get("sdnet18", num_classes=1000, input_shape=(64, 64, 3), stem="imagenet", **QUICK)
    assert trainable_params(sdnet) == 11_689_512  # torchvision's ResNet-18; paper 11.7 M
    assert sdnet.get_layer("stem_csc").kernel_size == 7 and sdnet.get_layer("stem_csc").strides == 2
    assert sdnet.get_layer("stem_pool").output.shape[1:3] == (16, 16)
    sdnet_all = models.get("sdnet18_all", num_classes=1000, input_shape=(64, 64, 3), stem="imagenet", **QUICK)
    pool = sdnet_all.get_layer("stem_pool_csc")  # a strided CSC layer replaces the max-pool
    assert isinstance(pool, CSCConv2D) and pool.output.shape[1:3] == (16, 16)
    assert trainable_params(sdnet_all) == 11_689_512 + 3 * 3 * 64 * 64
    assert models.get("resnet18_cifar", input_shape=(128, 128, 3)).get_layer("stem_conv").kernel.shape[0] == 3


@once
def test_sdnet34_counts():
    model = models.get("sdnet34", num_classes=1000, input_shape=(64, 64, 3), stem="imagenet", **QUICK)
    assert trainable_params(model) == 21_797_672  # torchvision's ResNet-34; the paper says 21.5 M


@once
def test_no_shortcut_variant_drops_the_additions_only():
    model = models.get("sdnet18_all", input_shape=(16, 16, 3), shortcut=False, **QUICK)
    assert model.name == "sdnet18_all_noshortcut"
    assert not any(isinstance(layer, keras.layers.Add) for layer in model.layers)
    with pytest.raises(ValueError, match="csc='stem'"):
        models.get("sdnet18", shortcut=False)


@pytest.mark.parametrize(
    "kwargs, message", [({"stem": "tiny"}, "stem='tiny'"), ({"input_shape": (32, 32)}, "input_shape")]
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        models.get("sdnet18", **kwargs)


@pytest.mark.parametrize(
    "name", [n if n == "sdnet18_cifar10" else pytest.param(n, marks=once) for n in CONFIGS]
)
def test_config_loads_and_builds_its_model(name):
    config = importlib.import_module(f"configs.csc.{name}").get_config()
    assert config.optimizer.momentum == 0.9 and config.model.name in models.available()
    num_classes = {"cifar10": 10, "cifar100": 100, "imagenet2012": 1000}[config.data.name]
    kwargs = dict(config.model.kwargs)
    if config.method.name == "csc":
        kwargs.update(QUICK)
    model = models.get(config.model.name, num_classes=num_classes, input_shape=(8, 8, 3), **kwargs)
    assert model.output.shape == (None, num_classes)
    assert trainable_params(model) == CONFIG_PARAMS[name]
    if config.method.name == "csc":
        assert all(layer.lam_value == 0.1 and layer.n_iter == 2 for layer in csc.csc_layers(model))

"""The LST-Net family (Li et al. 2020 Tables I-VIII) and the LST configs.

The CIFAR parameter counts are recomputed here from the official code's construction (``lld533/LST-Net``,
``resnet_lst_cifar.py``: ``LST2Block``, ``_make_layer``, ``handler``), independently of the builders.
"""

import functools
import importlib
import pathlib

import numpy as np
import pytest

from sparse_keras import models
from sparse_keras.models import lstnet

CONFIG_DIR = pathlib.Path(__file__).resolve().parents[2] / "configs" / "lst"


def trainable_params(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


# -- the official construction, counted by hand ----------------------------------------------------------
def lst2_block_params(c_in, c_out, downsample, a=2, k=3):
    """``LST2Block``: conv1 (T_r) C_in x C_s, weight2 (T_c) C_s x C_s, weight3 (T_s) a^2 x k x k shared,
    bn1/bn2 over C_s, bn3 over C_out; the downsample is a grouped (groups = C_in) 1x1 conv + BN."""
    c_s = c_out // (a * a)
    params = c_in * c_s + 2 * c_s + c_s * c_s + 2 * c_s + a * a * k * k + 2 * c_out
    if downsample:
        params += c_out * 1 + 2 * c_out  # weight (C_out, C_in / groups = 1, 1, 1) + BN
    return params


def official_lst2_cifar_params(blocks_per_stage, width=1, num_classes=10, a=2):
    params = 3 * 16 * 9 + 2 * 16  # conv1 (no bias) + bn1
    inplanes = 16
    for stage, planes in enumerate((16 * width, 32 * width, 64 * width)):
        stride = 1 if stage == 0 else 2
        out = planes * a * a
        for i in range(blocks_per_stage):
            params += lst2_block_params(inplanes, out, i == 0 and (stride != 1 or inplanes != out), a=a)
            inplanes = out
    params += 64 * width * a * a * 64 * width + 2 * 64 * width  # handler: 1x1 conv + BN
    return params + 64 * width * num_classes + num_classes  # fc


def lst1_cifar_params(blocks_per_stage, num_classes=10, a=2, k=3):
    """Table I(a): LST-I blocks (T_c C_in->C_out, T_s shared, T_r a^2 C_out->C_out), dense 1x1 D, no handler."""
    params, inplanes = 3 * 16 * 9 + 2 * 16, 16
    for stage, out in enumerate((16, 32, 64)):
        for i in range(blocks_per_stage):
            params += inplanes * out + 2 * out + a * a * k * k + 2 * a * a * out + a * a * out * out + 2 * out
            if i == 0 and stage > 0:
                params += inplanes * out + 2 * out
            inplanes = out
    return params + 64 * num_classes + num_classes


def test_official_lst_resnet20_has_177954_trainable_parameters():
    # Spec decision 4: the number the official PyTorch model reports for CIFAR-10: 34.3M MACs.
    assert official_lst2_cifar_params(6) == 177_954
    model = models.get("lstnet_resnet20")
    assert trainable_params(model) == 177_954
    assert lstnet.multiply_adds(model) == pytest.approx(34.3e6, rel=2e-3)


@pytest.mark.parametrize(
    "name,blocks,width",
    [
        ("lstnet_resnet32", 10, 1),
        ("lstnet_resnet44", 14, 1),
        ("lstnet_resnet56", 18, 1),
        ("lstnet_resnet110", 36, 1),
        ("lstnet_resnet164", 54, 1),
        ("lstnet_wrn16_8", 4, 8),
        ("lstnet_wrn16_10", 4, 10),
        ("lstnet_wrn22_8", 6, 8),
        ("lstnet_wrn28_10", 8, 10),
        ("lstnet_wrn40_4", 12, 4),
    ],
)
def test_cifar_family_matches_the_official_parameter_counts(name, blocks, width):
    model = models.get(name, num_classes=100)
    assert trainable_params(model) == official_lst2_cifar_params(blocks, width, num_classes=100)
    if name == "lstnet_resnet56":  # computed from Li et al. 2020: 0.518M parameters (CIFAR-10), 93.8M MACs
        assert lstnet.multiply_adds(model) == pytest.approx(93.8e6, rel=2e-3)


def test_lst1_network_matches_table_one_a():
    model = lstnet.lstnet_resnet_cifar(20, block="lst1")
    assert trainable_params(model) == lst1_cifar_params(6) == 171_298


def test_cifar_lstnet_layout_follows_the_official_code():
    model = models.get("lstnet_resnet20", input_shape=(32, 32, 3))
    blocks = [layer for layer in model.layers if isinstance(layer, models.lstnet.lst.LSTBlockII)]
    assert len(blocks) == 18
    assert [b.filters for b in blocks[::6]] == [64, 128, 256] and [b.strides for b in blocks[::6]] == [1, 2, 2]
    assert model.get_layer("handler_conv").output.shape[1:] == (8, 8, 64)
    assert model.output.shape[1:] == (10,)


def test_fashion_mnist_images_are_accepted():
    model = models.get("lstnet_resnet20", input_shape=(28, 28, 1))
    assert model.get_layer("handler_conv").output.shape[1:] == (7, 7, 64)


@pytest.mark.parametrize("depth", [21, 8.0, True])
def test_bad_depth_is_named(depth):
    with pytest.raises(ValueError, match="depth="):
        lstnet.lstnet_resnet_cifar(depth)


# -- ImageNet / Places365 (Li et al. 2020 Table VIII) -----------------------------------------------------------
@pytest.mark.parametrize(
    "name,paper_params,paper_macs",
    [("lstnet_resnet18", 7.71e6, 1.48e9), ("lstnet_resnet34", 13.50e6, 2.56e9), ("lstnet_vgg_gap", 6.30e6, 5.89e9)],
)
def test_places365_costs_match_table_viii_when_t_s_is_counted_per_channel(name, paper_params, paper_macs):
    # The paper tallies T_s as one filter bank per channel; share_spatial=False builds exactly that.
    model = models.get(name, num_classes=365, input_shape=(224, 224, 3), share_spatial=False)
    assert trainable_params(model) == pytest.approx(paper_params, rel=1e-3)  # Table VIII's 3 digits
    assert lstnet.multiply_adds(model) == pytest.approx(paper_macs, rel=3e-3)


@pytest.mark.parametrize(
    "name,output",
    [
        ("lstnet_resnet50", (4, 4, 2048)),
        ("lstnet_alexnet_gap", (7, 7, 256)),
        ("lstnet_shiftnet_a", (4, 4, 256)),
        ("lstnet_shiftnet_c", (4, 4, 128)),
        ("lstnet_mobilenetv2", (8, 8, 320)),
    ],
)
def test_imagenet_family_builds_on_small_images(name, output):
    # Shapes only, on 128x128 inputs to keep the test quick: the last LST block sees 1/32 of the input
    # (ResNet, ShiftNet), 1/16 (Table VII's MobileNetV2 with its stride-1 stem), or AlexNet's 11x11/4 stem
    # and two 3x3/2 pools. (VGG is built at 224x224 by the Table VIII test.)
    model = models.get(name, num_classes=7, input_shape=(128, 128, 3))
    last_block = [layer for layer in model.layers if isinstance(layer, lstnet.lst._LSTBlock)][-1]
    assert tuple(last_block.output.shape[1:]) == output
    assert model.output.shape[1:] == (7,)


def test_imagenet_resnet_baselines_match_torchvision():
    assert trainable_params(models.get("resnet18", num_classes=1000, input_shape=(224, 224, 3))) == 11_689_512
    assert trainable_params(models.get("resnet34", num_classes=1000, input_shape=(224, 224, 3))) == 21_797_672


# -- configs -------------------------------------------------------------------------------------------
CONFIGS = sorted(p.stem for p in CONFIG_DIR.glob("*.py") if p.stem not in ("__init__", "base"))


def test_there_are_lst_configs():
    assert {"lstnet_resnet20_cifar10", "resnet20_cifar10", "lstnet_resnet18_imagenet"} <= set(CONFIGS)


@functools.lru_cache(maxsize=None)
def build_once(name, kwargs):
    """Several configs share a model (CIFAR-10 / CIFAR-100, ImageNet / Places365): build each once."""
    return models.get(name, num_classes=10, input_shape=(32, 32, 3), **dict(kwargs))


@pytest.mark.parametrize("config_name", CONFIGS)
def test_config_loads_and_builds_its_model(config_name):
    config = importlib.import_module(f"configs.lst.{config_name}").get_config()
    assert config.method.name == ("lst" if config.model.name.startswith("lstnet_") else "none")
    model = build_once(config.model.name, tuple(sorted(config.model.kwargs.items())))
    assert model.output.shape[1:] == (10,)

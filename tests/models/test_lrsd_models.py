"""The networks LRSD compresses (Guo et al. 2019), their LRSD versions, and the LRSD configs."""

import importlib
import pathlib

import keras
import numpy as np
import pytest

from sparse_keras import lrsd, models
from sparse_keras.layers import LRSDConv2D, LRSDDense

CONFIGS = sorted(p.stem for p in pathlib.Path(__file__).parents[2].joinpath("configs", "lrsd").glob("*.py")
                 if p.stem not in ("__init__", "base"))


# Building these networks is backend-independent Python, but on JAX every distinct weight shape compiles
# its random initializer (about 20 s per network on a 2-core CPU); the builds are checked on TensorFlow,
# and JAX runs the LRSD layers themselves and to_lrsd on small models (test_lrsd_layers, test_lrsd_prune).
builds_networks = pytest.mark.skipif(
    keras.backend.backend() == "jax", reason="network builds are checked on TensorFlow (JAX compiles every init shape)"
)


def _trainable(model):
    # PyTorch counts parameters, not BN running statistics: the papers' numbers are trainable weights.
    return sum(int(np.prod(v.shape)) for v in model.trainable_weights)


# -- parameter counts against the papers -----------------------------------------------------------
@builds_networks
def test_vgg19_slim_parameter_count_matches_the_paper():
    # 16 3x3 convs without bias, 16 BNs (gamma, beta), Linear 512 -> 10: 20,035,018, the paper's 20.04M.
    count = _trainable(models.get("vgg19_slim", num_classes=10))
    assert count == 20_035_018 and abs(count - 20.04e6) <= 0.02 * 20.04e6


@builds_networks
def test_resnet50_parameter_count_is_torchvisions():
    assert _trainable(models.get("resnet50", num_classes=1000, input_shape=(32, 32, 3))) == 25_557_032


# -- the LRSD versions --------------------------------------------------------------------------------
@builds_networks
def test_lrsd_vgg_has_rank_1_modules_and_a_sparse_only_classifier():
    model = models.get("vgg7_slim", lrsd=True, rank="K/64")
    convs = [layer for layer in model.layers if isinstance(layer, LRSDConv2D)]
    assert len(convs) == 6 and all(c.batch_norm and not c.sparse_only for c in convs)
    assert [c.rank for c in convs] == [2, 2, 4, 4, 8, 8]
    fc = model.get_layer("classifier")
    assert isinstance(fc, LRSDDense) and fc.sparse_only and fc.sparse_l1 == 2e-6
    plain = models.get("vgg7_slim")
    assert lrsd.compression(model).original == _trainable(plain)  # N_o is the plain VGG-7
    assert model(np.zeros((2, 32, 32, 3), "float32")).shape == (2, 10)


@builds_networks
def test_lrsd_preact_resnet_compresses_1x1_convs_sparse_only():
    model = models.get("preact_resnet56", lrsd=True, input_shape=(16, 16, 3))
    kinds = {layer.name: layer for layer in model.layers if isinstance(layer, LRSDConv2D)}
    assert not kinds["stage1_block1_conv2"].sparse_only and kinds["stage1_block1_conv2"].rank == 1
    assert kinds["stage1_block1_conv1"].sparse_only and kinds["stage2_block1_shortcut_conv"].sparse_only
    assert kinds["stem_conv"].rank == 1  # the stem is decomposed too [our choice]


@builds_networks
@pytest.mark.parametrize("conv1x1, sparse_only_convs", [(False, 0), (True, 36)])
def test_lrsd_resnet50_variants(conv1x1, sparse_only_convs):
    model = models.get("resnet50", lrsd=True, lrsd_conv1x1=conv1x1, input_shape=(32, 32, 3))
    lrsd_convs = [layer for layer in model.layers if isinstance(layer, LRSDConv2D)]
    assert sum(not c.sparse_only for c in lrsd_convs) == 17  # the 7x7 stem and 16 3x3 convs
    assert sum(c.sparse_only for c in lrsd_convs) == sparse_only_convs  # 48 1x1 convs + 4 shortcuts - 16
    assert all(not c.batch_norm and c.sparse_l1 == 1e-6 for c in lrsd_convs if not c.sparse_only)
    assert isinstance(model.get_layer("classifier"), LRSDDense)


@pytest.mark.parametrize("name", ["vgg19_slim", "preact_resnet56"])
def test_bad_builder_input_is_named(name):
    with pytest.raises(ValueError, match="input_shape="):
        models.get(name, input_shape=(32, 32))


def test_bad_preact_depth_is_named():
    from sparse_keras.models import preact_resnet

    with pytest.raises(ValueError, match="depth=57"):
        preact_resnet.preact_resnet(57)


# -- configs -------------------------------------------------------------------------------------------
def test_every_table_has_a_config():
    assert {"vgg19_cifar10", "vgg19_cifar100", "vgg7_cifar10", "preact_resnet56_cifar10", "preact_resnet164_cifar100",
            "resnet50_imagenet", "resnet50_conv1x1_imagenet"} <= set(CONFIGS)


@pytest.mark.parametrize("name", CONFIGS)
def test_config_loads_with_the_papers_settings(name):
    from sparse_keras.training import stages

    config = importlib.import_module(f"configs.lrsd.{name}").get_config()
    stages.check(config)  # what the training binary validates before it builds anything
    assert config.method.name == "lrsd" and config.method.alpha == 0.9 and config.model.kwargs.lrsd
    assert config.optimizer.weight_decay == 1e-4 and config.optimizer.momentum == 0.9
    if config.data.name.startswith("cifar"):
        assert (config.data.batch_size, config.epochs, config.schedule.boundaries) == (64, 160, (80, 120))
        assert config.model.kwargs.sparse_l1 == 2e-6
        assert config.method.finetune_epochs == 160 and config.method.finetune_schedule.boundaries == (80, 120)
    else:
        assert (config.data.batch_size, config.epochs, config.method.finetune_epochs) == (256, 90, 20)
        assert config.method.finetune_optimizer.learning_rate == 1e-3
        assert config.model.kwargs.sparse_l1 == 1e-6


# N_o of each CIFAR config's LRSD model (its plain network and Guo et al. 2019 Table 2); None: not given.
PAPER_PARAMS = {
    "vgg19_cifar10": 20.04e6,
    "vgg19_cifar100": 20.08e6,
    "vgg7_cifar10": None,
    "vgg7_cifar100": None,
    "preact_resnet56_cifar10": 0.59e6,
    "preact_resnet164_cifar100": 1.73e6,
}
NUM_CLASSES = {"cifar10": 10, "cifar100": 100}


@builds_networks
@pytest.mark.parametrize("name", sorted(PAPER_PARAMS))  # ResNet-50: test_lrsd_resnet50_variants builds it
def test_config_builds_its_lrsd_model_whose_plain_network_matches_the_paper(name):
    config = importlib.import_module(f"configs.lrsd.{name}").get_config()
    model = models.get(config.model.name, num_classes=NUM_CLASSES[config.data.name], **config.model.kwargs)
    assert any(isinstance(layer, LRSDConv2D) for layer in model.layers)
    paper = PAPER_PARAMS[name]
    if paper is not None:
        n_o = lrsd.compression(model).original
        assert abs(n_o - paper) <= 0.02 * paper, (name, n_o, paper)


def test_every_cifar_config_is_built_by_a_test():
    assert set(PAPER_PARAMS) == {n for n in CONFIGS if not n.startswith("resnet50")}


@builds_networks
def test_rank_override_of_a_config_reaches_the_layers():
    config = importlib.import_module("configs.lrsd.vgg7_cifar10").get_config()
    config.model.kwargs.rank = "K/10"  # what --config.model.kwargs.rank=K/10 does (Table 5)
    model = models.get(config.model.name, **config.model.kwargs)
    assert model.get_layer("block1_conv1").rank == 12

"""The structured-sparsity paper's Table 2 base architectures (sparse_keras.models.ssr_paper): layer shapes and parameter counts."""
import keras
import pytest

from sparse_keras import models
from sparse_keras.models import ssr_paper


def _convs(model):
    return [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D) and layer.name.startswith("conv")]


def _trainable(model):
    return sum(int(keras.ops.size(w)) for w in model.trainable_weights)


def _expected_params(table, in_channels, num_classes, shortcuts):
    """Table 2 by hand: s*s*d_(i-1)*d_i + d_i (bias) per conv, 1x1 projections, classifier."""
    total, previous = 0, in_channels
    for d, s in table:
        total += s * s * previous * d + d
        previous = d
    total += sum(d_in * d_out + d_out for d_in, d_out in shortcuts)
    return total + previous * num_classes + num_classes


@pytest.mark.parametrize(
    "name, table",
    [
        ("ssr_imagenet8", [(64, 7)] + [(64, 3)] * 2 + [(128, 3)] * 2 + [(256, 3)] * 2),
        ("ssr_imagenet18", [(64, 7)] + [(64, 3)] * 4 + [(128, 3)] * 4 + [(256, 3)] * 4 + [(512, 3)] * 4),
        ("ssr_cifar20", [(16, 3)] * 7 + [(32, 3)] * 6 + [(64, 3)] * 6),
        ("ssr_cifar20_k5", [(64, 5)] * 19),
    ],
)
def test_table2_widths_and_kernel_sizes(name, table):
    assert ssr_paper.base_architecture(name) == table
    model = models.get(name, num_classes=10, input_shape=(32, 32, 3))
    assert [(c.filters, c.kernel_size[0]) for c in _convs(model)] == table
    assert len(_convs(model)) + 1 == {"ssr_imagenet8": 8, "ssr_imagenet18": 18}.get(name, 20)  # D with the FC


def test_cifar20_parameters_match_the_table_by_hand():
    table = ssr_paper.base_architecture("ssr_cifar20")
    resnet = models.get("ssr_cifar20", num_classes=10, input_shape=(32, 32, 3))
    plain = models.get("ssr_cifar20", num_classes=10, input_shape=(32, 32, 3), plain=True)
    assert plain.count_params() == _expected_params(table, 3, 10, shortcuts=[]) == 269_034
    assert resnet.count_params() == _expected_params(table, 3, 10, shortcuts=[(16, 32), (32, 64)]) == 271_690


def test_resnet_variant_has_shortcuts_across_pairs_from_the_second_layer():
    model = models.get("ssr_cifar20", input_shape=(28, 28, 1))
    adds = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Add)]
    assert adds == [f"add{i}" for i in range(3, 20, 2)]  # pairs (2,3), (4,5), .., (18,19)
    assert not any(isinstance(layer, keras.layers.Add) for layer in models.get("ssr_cifar20", plain=True).layers)


@pytest.mark.parametrize("name, reference", [("ssr_imagenet18", 11_689_512), ("ssr_cifar20", None)])
def test_batch_norm_variant_is_the_standard_resnet(name, reference):
    """With BN (no conv biases) the ResNet variants are ResNet-18 (torchvision: 11,689,512) and ResNet-20
    (option-B shortcuts, as sparse_keras' resnet20)."""
    classes = 1000 if "imagenet" in name else 10  # parameters do not depend on the image size: build small
    model = models.get(name, num_classes=classes, input_shape=(32, 32, 3), batch_norm=True)
    reference = reference or _trainable(models.get("resnet20", num_classes=10, input_shape=(32, 32, 3)))
    assert _trainable(model) == reference


def test_width_multiplier_scales_every_layer_and_rejects_bad_values():
    model = models.get("ssr_cifar20", input_shape=(28, 28, 1), width_multiplier=0.5)
    assert [c.filters for c in _convs(model)] == [8] * 7 + [16] * 6 + [32] * 6
    with pytest.raises(ValueError, match="width_multiplier=0"):
        models.get("ssr_cifar20", width_multiplier=0)
    with pytest.raises(ValueError, match="not_a_base"):
        ssr_paper.base_architecture("not_a_base")


def test_imagenet_stem_downsamples_by_four():
    model = models.get("ssr_imagenet8", num_classes=5, input_shape=(64, 64, 3))
    assert tuple(model.get_layer("stem_pool").output.shape[1:3]) == (16, 16)
    assert tuple(model.get_layer("conv7").output.shape[1:]) == (4, 4, 256)
    assert model(keras.ops.zeros((2, 64, 64, 3))).shape == (2, 5)

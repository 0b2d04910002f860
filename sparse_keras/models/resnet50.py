"""ResNet-50 for ImageNet (torchvision layout) and its LRSD versions (Guo et al. 2019, section IV-C).

The plain network follows :mod:`sparse_keras.models.resnet_imagenet` (same stem, shortcuts, symmetric
PyTorch padding, BN and initialisation, whose helpers it reuses) with bottleneck blocks: 1x1, 3x3 (carrying
the stride, "ResNet v1.5" as torchvision), 1x1 x4 on stages of 3, 4, 6, 3 blocks at 64, 128, 256, 512
planes. 25,557,032 parameters with 1000 classes, as torchvision.

``lrsd=True`` builds the paper's ImageNet variants:

* ``"LRSD"`` (``lrsd_conv1x1=False``): the 7x7 stem and every 3x3 conv become ``U V + S`` of rank ``rank``,
  the classifier gets only ``S``; the bottlenecks' 1x1 convs (and the 1x1 shortcuts) stay plain.
* ``"LRSD-conv1x1"`` (``lrsd_conv1x1=True``): the 1x1 convs get only ``S`` too [our choice].

The paper adds the BN after ``U`` "on small datasets"; on ImageNet it is off by default
(``lrsd_batch_norm``) (our choice; the paper does not say). lambda = 1e-6 on ImageNet.
"""

import keras
from keras import layers

from sparse_keras.sparsity import convert
from sparse_keras.models import registry
from sparse_keras.models import resnet_imagenet

STAGES = (3, 4, 6, 3)
EXPANSION = 4


@registry.register("resnet50")
def resnet50(
    num_classes=1000,
    input_shape=(224, 224, 3),
    lrsd=False,
    rank=1,
    sparse_l1=1e-6,
    lrsd_conv1x1=False,
    lrsd_batch_norm=False,
    name="resnet50",
):
    """Builds ResNet-50, or with ``lrsd=True`` its LRSD version (see the module docstring)."""
    num_classes = registry.check_num_classes(num_classes)
    input_shape = registry.check_input_shape(input_shape)
    if len(input_shape) != 3:
        raise ValueError(f"ResNet-50 takes images (height, width, channels); got input_shape={input_shape!r}")
    inputs = keras.Input(shape=input_shape, name="image")
    x = resnet_imagenet._conv_bn(inputs, 64, 7, 2, name="stem")
    x = layers.ReLU(name="stem_relu")(x)
    x = layers.ZeroPadding2D(1, name="stem_pool_pad")(x)  # after a ReLU, zero padding == -inf padding
    x = layers.MaxPooling2D(3, strides=2, name="stem_pool")(x)
    for stage, (width, count) in enumerate(zip(resnet_imagenet.WIDTHS, STAGES), start=2):
        for i in range(1, count + 1):
            x = apply_bottleneck(x, width, 2 if stage > 2 and i == 1 else 1, name=f"conv{stage}_block{i}")
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = layers.Dense(num_classes, name="classifier")(x)
    model = keras.Model(inputs, outputs, name=name)
    if not lrsd:
        return model

    def compressed(layer):
        return lrsd_conv1x1 or isinstance(layer, keras.layers.Dense) or tuple(layer.kernel_size) != (1, 1)

    return convert.to_lrsd(model, rank=rank, where=compressed, sparse_l1=sparse_l1, batch_norm=lrsd_batch_norm)


def apply_bottleneck(x, width, strides, name):
    """``relu(bn(1x1 x4)(relu(bn(3x3, strides)(relu(bn(1x1)(x))))) + shortcut(x))``."""
    y = layers.ReLU(name=f"{name}_relu1")(resnet_imagenet._conv_bn(x, width, 1, 1, name=f"{name}_1"))
    y = layers.ReLU(name=f"{name}_relu2")(resnet_imagenet._conv_bn(y, width, 3, strides, name=f"{name}_2"))
    y = resnet_imagenet._conv_bn(y, EXPANSION * width, 1, 1, name=f"{name}_3")
    return resnet_imagenet._merge(x, y, EXPANSION * width, strides, name)

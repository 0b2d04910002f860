"""The basic-block ImageNet ResNets of He et al. 2016 (torchvision layout): baselines of LST-Net's Table II.

``resnet18/34``: a 7x7/2 stem conv and a 3x3/2 max-pool, then stages of 2/2/2/2 and 3/4/6/3 basic blocks
(two 3x3 convs) at 64/128/256/512 channels, global average pooling and a Dense classifier (logits). As in
torchvision: downsampling shortcuts are 1x1 conv + BN, padding is symmetric as in PyTorch (explicit zero
padding before every strided conv and the stem max-pool), BN uses ``eps=1e-5`` and PyTorch's running-average
rate, convs are He-normal (fan-out) without bias. The bottleneck ResNet-50 is :mod:`sparse_keras.models.resnet50`.

Parameters with 1000 classes: 11,689,512 (ResNet-18), 21,797,672 (ResNet-34), as torchvision.
"""

import keras
from keras import layers

from sparse_keras.models import registry

BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9
WIDTHS = (64, 128, 256, 512)
STAGES = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}


def resnet_imagenet(depth, num_classes=1000, input_shape=(224, 224, 3), name=None):
    """Builds ResNet-``depth`` (18 or 34) for ImageNet-sized images; see the module docstring."""
    if depth not in STAGES:
        raise ValueError(f"depth must be one of {sorted(STAGES)}, got depth={depth!r}")
    counts = STAGES[depth]
    num_classes = registry.check_num_classes(num_classes)
    input_shape = registry.check_input_shape(input_shape)
    if len(input_shape) != 3:
        raise ValueError(f"An ImageNet ResNet takes images (height, width, channels); got input_shape={input_shape!r}")
    inputs = keras.Input(shape=input_shape, name="image")
    x = _conv_bn(inputs, 64, 7, 2, name="stem")
    x = layers.ReLU(name="stem_relu")(x)
    x = layers.ZeroPadding2D(1, name="stem_pool_pad")(x)  # after a ReLU, zero padding == -inf padding
    x = layers.MaxPooling2D(3, strides=2, name="stem_pool")(x)
    for stage, (width, count) in enumerate(zip(WIDTHS, counts), start=2):
        for i in range(1, count + 1):
            strides = 2 if stage > 2 and i == 1 else 1
            x = _basic_block(x, width, strides, name=f"conv{stage}_block{i}")
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = layers.Dense(num_classes, name="classifier")(x)
    return keras.Model(inputs, outputs, name=name or f"resnet{depth}")


def _basic_block(x, width, strides, name):
    y = layers.ReLU(name=f"{name}_relu1")(_conv_bn(x, width, 3, strides, name=f"{name}_1"))
    y = _conv_bn(y, width, 3, 1, name=f"{name}_2")
    return _merge(x, y, width, strides, name)


def _merge(x, y, filters, strides, name):
    shortcut = x
    if strides != 1 or x.shape[-1] != filters:
        shortcut = _conv_bn(x, filters, 1, strides, name=f"{name}_shortcut")
    return layers.ReLU(name=f"{name}_out")(layers.Add(name=f"{name}_add")([y, shortcut]))


def _conv_bn(x, filters, kernel_size, strides, name):
    pad = (kernel_size - 1) // 2
    padding = "same"
    if strides > 1 and pad:
        x = layers.ZeroPadding2D(pad, name=f"{name}_pad")(x)
        padding = "valid"
    x = layers.Conv2D(
        filters, kernel_size, strides=strides, padding=padding, use_bias=False,
        kernel_initializer=keras.initializers.VarianceScaling(2.0, "fan_out", "untruncated_normal"),
        name=f"{name}_conv",
    )(x)
    return layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=f"{name}_bn")(x)


def _register_depth(depth):
    def builder(num_classes=1000, input_shape=(224, 224, 3), **kwargs):
        return resnet_imagenet(depth, num_classes=num_classes, input_shape=input_shape, **kwargs)

    builder.__name__ = builder.__qualname__ = f"resnet{depth}"
    builder.__doc__ = f"ResNet-{depth} for ImageNet (basic blocks {STAGES[depth]}); see `resnet_imagenet`."
    return registry.register(f"resnet{depth}")(builder)


resnet18 = _register_depth(18)
resnet34 = _register_depth(34)

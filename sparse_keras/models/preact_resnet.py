"""Pre-activation bottleneck ResNets for CIFAR as in the network-slimming code (``models/preresnet.py``).

LRSD (Guo et al. 2019) compresses PreActResNet-56 and -164 and takes both from the slimming code base, which
builds only the bottleneck version of depth ``9n + 2`` (decision 5):

* stem: 3x3 conv 3 -> 16 (no BN: the first block pre-activates);
* three stages of ``n`` bottlenecks with 16, 32, 64 planes (expansion 4); the first block of stages 2 and
  3 has stride 2 on its 3x3 conv; a block is ``BN-ReLU-1x1, BN-ReLU-3x3, BN-ReLU-1x1 (x4)`` added to the
  shortcut, which is the identity or, where shape changes, a bare 1x1 conv (no BN) on the block input;
* head: BN-ReLU, average pool (8x8 on CIFAR), Dense 256 -> classes.

``preact_resnet164`` (n = 18) has 1.70M parameters on CIFAR-10 and 1.73M on CIFAR-100, ``preact_resnet56``
(n = 6) 0.59M. Initialisation and BN settings are the slimming ones shared with
:mod:`sparse_keras.models.vgg_slim` (the classifier keeps Keras' default, as PyTorch's Linear does).

``lrsd=True``: every 3x3 conv becomes ``U V + S`` (+ BN after ``U``), the 1x1 convs and the classifier
only ``S``, the paper's CIFAR setting.
"""

import numbers

import keras
from keras import layers

from sparse_keras.models import registry
from sparse_keras.models import vgg_slim

WIDTHS = (16, 32, 64)
EXPANSION = 4


def preact_resnet(depth, num_classes=10, input_shape=(32, 32, 3), lrsd=False, rank=1, sparse_l1=2e-6, name=None):
    """Builds the slimming PreActResNet of ``depth = 9n + 2`` layers (bottleneck blocks).

    Args:
      depth: 9n + 2 with n >= 1 (11, 20, ..., 56, ..., 164).
      num_classes, input_shape: the data; ``input_shape`` is ``(height, width, channels)``.
      lrsd: build the LRSD version (``rank`` of ``U V``, ``sparse_l1`` the lambda of eq. 4).
      name: model name, ``preact_resnet{depth}`` by default.
    """
    if isinstance(depth, bool) or not isinstance(depth, numbers.Integral) or depth < 11 or (depth - 2) % 9:
        raise ValueError(
            f"A bottleneck PreActResNet has depth 9n + 2 with n >= 1 (11, 20, 56, 164, ...); got depth={depth!r}"
        )
    blocks = (int(depth) - 2) // 9
    num_classes = registry.check_num_classes(num_classes)
    input_shape = registry.check_input_shape(input_shape)
    if len(input_shape) != 3:
        raise ValueError(f"A PreActResNet takes images (height, width, channels); got input_shape={input_shape!r}")
    inputs = keras.Input(shape=input_shape, name="image")
    x = _conv(WIDTHS[0], 3, 1, "stem_conv")(inputs)
    for stage, planes in enumerate(WIDTHS, start=1):
        for block in range(1, blocks + 1):
            stride = 2 if stage > 1 and block == 1 else 1
            x = apply_preact_bottleneck(x, planes, stride, name=f"stage{stage}_block{block}")
    x = _batch_norm("final_bn")(x)
    x = layers.ReLU(name="final_relu")(x)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = layers.Dense(num_classes, name="classifier")(x)
    model = keras.Model(inputs, outputs, name=name or f"preact_resnet{depth}")
    if lrsd:
        model = vgg_slim.to_lrsd_slimming(model, rank=rank, sparse_l1=sparse_l1)
    return model


def apply_preact_bottleneck(x, planes, stride, name):
    """``conv1x1(relu(bn(conv3x3(relu(bn(conv1x1(relu(bn(x)))))))) + shortcut(x)`` with ``4 * planes`` outputs."""
    y = x
    for index, (width, size, step) in enumerate(((planes, 1, 1), (planes, 3, stride), (planes * EXPANSION, 1, 1)), 1):
        y = _batch_norm(f"{name}_bn{index}")(y)
        y = layers.ReLU(name=f"{name}_relu{index}")(y)
        y = _conv(width, size, step, f"{name}_conv{index}")(y)
    shortcut = x
    if stride != 1 or x.shape[-1] != planes * EXPANSION:
        shortcut = _conv(planes * EXPANSION, 1, stride, f"{name}_shortcut_conv")(x)
    return layers.Add(name=f"{name}_add")([y, shortcut])


def _conv(filters, size, stride, name):
    return layers.Conv2D(
        filters,
        size,
        strides=stride,
        padding="same",
        use_bias=False,
        kernel_initializer=vgg_slim.CONV_INITIALIZER,
        name=name,
    )


def _batch_norm(name):
    return layers.BatchNormalization(
        epsilon=vgg_slim.BN_EPSILON,
        momentum=vgg_slim.BN_MOMENTUM,
        gamma_initializer=keras.initializers.Constant(vgg_slim.BN_GAMMA),
        name=name,
    )


def _register(depth):
    def builder(num_classes=10, input_shape=(32, 32, 3), **kwargs):
        return preact_resnet(depth, num_classes=num_classes, input_shape=input_shape, **kwargs)

    builder.__name__ = builder.__qualname__ = f"preact_resnet{depth}"
    builder.__doc__ = f"PreActResNet-{depth} (bottleneck, n = {(depth - 2) // 9}); see `preact_resnet`."
    return registry.register(f"preact_resnet{depth}")(builder)


preact_resnet56 = _register(56)
preact_resnet164 = _register(164)

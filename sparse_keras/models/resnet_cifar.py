"""The CIFAR ResNets of He et al. 2016 (section 4.2) and their plain counterparts.

``6n + 2`` weighted layers: a 3x3 stem conv with 16 filters, three stages of ``n`` basic blocks with 16, 32
and 64 filters (the first block of stages 2 and 3 halves the resolution with stride 2), global average
pooling and a Dense classifier. ``resnet20/32/44/56/110`` are ``n = 3, 5, 7, 9, 18``.

Choices that differ between ports, fixed here to match the PyTorch ports the sparsity papers train:

* downsampling shortcuts are a 1x1 conv with stride 2 followed by BN (the paper's option B), not option
  A's zero padding, so every weight is a kernel that the regularizers and shrinking can see;
* BN uses PyTorch's ``eps=1e-5`` and running-average rate 0.1, which is Keras ``momentum=0.9``;
* convs are He-normal initialised and have no bias (the following BN's beta plays that role);
* the classifier outputs logits (``classifier_activation=None``): train with ``from_logits=True``.

Layer names are stable and meaningful (``stem_conv``, ``stage2_block1_conv1``, ``stage2_block1_shortcut_conv``,
``classifier``) because masks, configs and reports refer to layers by name.
"""

import numbers

import keras
from keras import layers

from sparse_keras.layers.batch_norm import FusedBatchNormalization
from sparse_keras.models import registry

WIDTHS = (16, 32, 64)
BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9  # Keras weighs the old running statistic; PyTorch's momentum=0.1 weighs the new one.
KERNEL_INITIALIZER = "he_normal"  # He et al. 2015 initialisation, used by the paper and the ports.


def resnet_cifar(
    depth,
    num_classes=10,
    input_shape=(32, 32, 3),
    plain=False,
    classifier_activation=None,
    name=None,
):
    """Builds a CIFAR ResNet (or, with ``plain=True``, the same net without shortcuts) of ``depth`` layers.

    Args:
      depth: number of weighted layers, ``6n + 2`` with ``n >= 1`` (20, 32, 44, 56, 110, ...).
      num_classes: width of the classifier.
      input_shape: ``(height, width, channels)`` of one image, channels last; ``(28, 28, 1)`` works too.
      plain: drop every shortcut (the "plain" baselines of the paper's figure 6).
      classifier_activation: activation of the classifier; ``None`` gives logits.
      name: model name; defaults to ``resnet{depth}`` or ``plain{depth}``.

    Returns:
      A functional ``keras.Model``.
    """
    blocks = _blocks_per_stage(depth)
    num_classes = registry.check_num_classes(num_classes)
    input_shape = registry.check_input_shape(input_shape)
    if len(input_shape) != 3:
        raise ValueError(
            f"A CIFAR ResNet takes images (height, width, channels); got input_shape={input_shape!r}"
        )
    inputs = keras.Input(shape=input_shape, name="image")
    x = _conv(WIDTHS[0], 3, 1, name="stem_conv")(inputs)
    x = _batch_norm(name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    for stage, filters in enumerate(WIDTHS, start=1):
        for block in range(1, blocks + 1):
            stride = 2 if stage > 1 and block == 1 else 1
            x = apply_basic_block(x, filters, stride, name=f"stage{stage}_block{block}", plain=plain)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = layers.Dense(num_classes, activation=classifier_activation, name="classifier")(x)
    return keras.Model(inputs, outputs, name=name or f"{'plain' if plain else 'resnet'}{depth}")


def apply_basic_block(x, filters, stride, name, plain=False):
    """Two 3x3 conv-BN layers and a shortcut: ``relu(bn(conv(relu(bn(conv(x))))) + shortcut(x))``.

    The first conv carries the stride. The shortcut is the identity when shapes agree and a 1x1 conv
    with ``stride`` + BN when the block changes resolution or width; ``plain=True`` drops it.
    """
    y = _conv(filters, 3, stride, name=f"{name}_conv1")(x)
    y = _batch_norm(name=f"{name}_bn1")(y)
    y = layers.ReLU(name=f"{name}_relu1")(y)
    y = _conv(filters, 3, 1, name=f"{name}_conv2")(y)
    y = _batch_norm(name=f"{name}_bn2")(y)
    if not plain:
        shortcut = x
        if stride != 1 or x.shape[-1] != filters:
            shortcut = _conv(filters, 1, stride, name=f"{name}_shortcut_conv")(x)
            shortcut = _batch_norm(name=f"{name}_shortcut_bn")(shortcut)
        y = layers.Add(name=f"{name}_add")([y, shortcut])
    return layers.ReLU(name=f"{name}_relu2")(y)


def _conv(filters, kernel_size, stride, name):
    return layers.Conv2D(
        filters,
        kernel_size,
        strides=stride,
        padding="same",
        use_bias=False,
        kernel_initializer=KERNEL_INITIALIZER,
        name=name,
    )


def _batch_norm(name):
    return FusedBatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name)


def _blocks_per_stage(depth):
    # bool is an int; `depth=True` is a mistake, not a 1-layer net.
    if isinstance(depth, bool) or not isinstance(depth, numbers.Integral) or depth < 8 or (depth - 2) % 6:
        raise ValueError(f"A CIFAR ResNet has depth 6n + 2 with n >= 1 (8, 14, 20, 32, ...); got depth={depth!r}")
    return (int(depth) - 2) // 6


def _register_depth(depth):
    def builder(num_classes=10, input_shape=(32, 32, 3), **kwargs):
        return resnet_cifar(depth, num_classes=num_classes, input_shape=input_shape, **kwargs)

    builder.__name__ = builder.__qualname__ = f"resnet{depth}"
    builder.__doc__ = f"ResNet-{depth} for CIFAR ({(depth - 2) // 6} blocks per stage); see `resnet_cifar`."
    return registry.register(f"resnet{depth}")(builder)


resnet20 = _register_depth(20)
resnet32 = _register_depth(32)
resnet44 = _register_depth(44)
resnet56 = _register_depth(56)
resnet110 = _register_depth(110)

"""The VGGNet variant of network slimming (Liu et al. 2017), the VGG that LRSD (Guo et al. 2019) compresses.

Every conv is 3x3, stride 1, "same", without bias, followed by BN and ReLU; ``M`` is a 2x2 max-pool; after
the last conv an average pool (the slimming code's ``AvgPool2d(2)`` on the 2x2 map of a 32x32 input, a
global average here so other input sizes work) and one Dense classifier. There is no big FC block.

* ``vgg19_slim``: 64, 64, M, 128, 128, M, 256 x4, M, 512 x4, M, 512 x4: 20.04M parameters on CIFAR-10
  (the paper's 20.08M on CIFAR-100).
* ``vgg7_slim``: not specified by the paper or any code we could read (our choice); our definition
  is the slimming-style net with 7 weight layers, 128, 128, M, 256, 256, M, 512, 512 and the classifier
  (the widths of the common "VGG-7" of the quantisation literature, without its 1024-wide FC): 4.57M
  parameters on CIFAR-10.

Initialisation as the slimming code: conv ``N(0, 2 / (k^2 C_out))``, BN gamma 0.5 and beta 0, classifier
``N(0, 0.01^2)`` with zero bias. BN uses PyTorch's eps 1e-5 and running-average rate 0.1.

``lrsd=True`` returns the LRSD version (Guo et al. 2019 with the CIFAR choices: every 3x3 conv becomes
``U V + S`` with a BN after ``U``, the classifier only ``S``), built by
:func:`sparse_keras.convert.to_lrsd` from the plain network so both share layer names.
"""

import keras
from keras import layers

from sparse_keras.sparsity import convert
from sparse_keras.models import registry

M = "M"
CONFIGS = {
    "vgg19_slim": (64, 64, M, 128, 128, M, 256, 256, 256, 256, M, 512, 512, 512, 512, M, 512, 512, 512, 512),
    "vgg7_slim": (128, 128, M, 256, 256, M, 512, 512),
}
BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9
BN_GAMMA = 0.5  # slimming initialises every BN scale to 0.5
# N(0, 2 / n) with n = k * k * out_channels, not truncated, as the slimming code's _initialize_weights.
CONV_INITIALIZER = keras.initializers.VarianceScaling(2.0, mode="fan_out", distribution="untruncated_normal")
CLASSIFIER_INITIALIZER = keras.initializers.RandomNormal(stddev=0.01)


def vgg_slim(cfg, num_classes=10, input_shape=(32, 32, 3), lrsd=False, rank=1, sparse_l1=2e-6, name="vgg_slim"):
    """Builds a slimming-style VGG from ``cfg`` (widths and ``"M"`` for max-pools).

    Args:
      cfg: sequence of conv widths (positive ints) and ``"M"``.
      num_classes, input_shape: the data; ``input_shape`` is ``(height, width, channels)``.
      lrsd: build the LRSD version (``rank``: rank of ``U V``; ``sparse_l1``: lambda of eq. 4).
      name: model name.
    """
    num_classes = registry.check_num_classes(num_classes)
    input_shape = registry.check_input_shape(input_shape)
    if len(input_shape) != 3:
        raise ValueError(f"A VGG takes images (height, width, channels); got input_shape={input_shape!r}")
    inputs = keras.Input(shape=input_shape, name="image")
    x, block, index = inputs, 1, 0
    for item in cfg:
        if item == M:
            x = layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
            block, index = block + 1, 0
            continue
        index += 1
        prefix = f"block{block}_conv{index}"
        x = layers.Conv2D(item, 3, padding="same", use_bias=False, kernel_initializer=CONV_INITIALIZER, name=prefix)(x)
        x = layers.BatchNormalization(
            epsilon=BN_EPSILON,
            momentum=BN_MOMENTUM,
            gamma_initializer=keras.initializers.Constant(BN_GAMMA),
            name=f"{prefix}_bn",
        )(x)
        x = layers.ReLU(name=f"{prefix}_relu")(x)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = layers.Dense(num_classes, kernel_initializer=CLASSIFIER_INITIALIZER, name="classifier")(x)
    model = keras.Model(inputs, outputs, name=name)
    if lrsd:
        model = to_lrsd_slimming(model, rank=rank, sparse_l1=sparse_l1)
    return model


def to_lrsd_slimming(model, rank=1, sparse_l1=2e-6, **kwargs):
    """:func:`sparse_keras.convert.to_lrsd` with the slimming initialisation (shared by the CIFAR families).

    ``V``, ``U`` and ``S`` are initialised like the layers they replace and the BN after ``U`` like the
    network's BNs (gamma 0.5) [our choice].
    """
    return convert.to_lrsd(model, rank=rank, sparse_l1=sparse_l1, batch_norm_gamma=BN_GAMMA, **kwargs)


def _register(name):
    def builder(num_classes=10, input_shape=(32, 32, 3), **kwargs):
        return vgg_slim(CONFIGS[name], num_classes=num_classes, input_shape=input_shape, name=name, **kwargs)

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = f"{name}: the slimming VGG with cfg {CONFIGS[name]}; see `vgg_slim`."
    return registry.register(name)(builder)


vgg19_slim = _register("vgg19_slim")
vgg7_slim = _register("vgg7_slim")

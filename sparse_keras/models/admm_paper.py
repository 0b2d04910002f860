"""The four baseline networks of the ADMM sparsity paper (Kiaee et al. 2016, Table 1).

* ``nin``: the modified Network in Network, whose 5x5 convs became 3x3 ones (conv1, conv4, conv5, conv8).
* ``nin_lowrank``: the same with every 3x3 conv split into parallel 1x3 and 3x1 convs (Ioannou et al. 2015).
* ``admm_cnn``: the paper's custom CNN, four 3x3 convs, fc1 (256) and fc2 (the classifier).
* ``admm_cnn_lowrank``: the same with the parallel 1x3 / 3x1 split.

Choices taken from the official code where the paper is silent:

* every conv has a bias and a ReLU and pads 'same'; kernels start from N(0, 0.05^2) (biases from zero,
  Keras' default: neither the paper nor the spec names a bias initialiser);
* NIN drops out half its activations after each of its two pools;
* NIN's last 1x1 conv (``conv10``) keeps its ReLU before the global average pool, so its "logits" are
  non-negative; ``final_relu=False`` drops it for anyone who wants the textbook head;
* conv5 is 3x3 as the paper's table says, although ``nin_c3`` builds it 3x1 (spec, code discrepancy).

The custom CNN's pools are our choice (the paper does not place them): fc1's fan-in of 1024 = 4*4*64 on 32x32 inputs
forces three stride-2 halvings, placed as 2x2 max-pools after conv1, conv2 and conv3. On 28x28
Fashion-MNIST the same pools give 14 -> 7 -> 3 (floor), so there fc1's fan-in is 3*3*64 = 576 instead.

A low-rank layer is two convs on the same input, ``<name>_h`` (1x3) and ``<name>_v`` (3x1), each with half
the outputs, concatenated (``<name>_concat``) and only then passed through the ReLU (``<name>_relu``),
as in ``nin_c3_lr``; half the output maps come from 1x3 filters and half from 3x1 filters.

:func:`sparsified_layers` names the layers the paper sparsifies (its Table 3 columns), so the ADMM code
uses the paper's selection, e.g. ``regularize(model, reg, where=sparsified_layers("nin"))``.
"""

import numbers

import keras
from keras import layers

from sparse_keras.models import registry

INIT_STDDEV = 0.05  # N(0, 0.05^2), the official code's initialiser for every weight.

# (name, filters, kernel size) of each NIN conv before the classifier conv10, block by block (the blocks end
# in the pools); the 3x3 ones are the sparsified spatial convs, the 1x1 ones the mlpconvs.
_NIN_BLOCK1 = (("conv1", 192, 3), ("conv2", 160, 1), ("conv3", 96, 1))
_NIN_BLOCK2 = (("conv4", 192, 3), ("conv5", 192, 3), ("conv6", 192, 1), ("conv7", 192, 1))
_NIN_BLOCK3 = (("conv8", 192, 3), ("conv9", 192, 1))
_CNN_CONVS = (("conv1", 96), ("conv2", 128), ("conv3", 256), ("conv4", 64))
_CNN_FC1_UNITS = 256

_NIN_SPATIAL = tuple(name for block in (_NIN_BLOCK1, _NIN_BLOCK2, _NIN_BLOCK3) for name, _, size in block if size == 3)
_CNN_CONV_NAMES = tuple(name for name, _ in _CNN_CONVS)

# The paper's sparsified layers in its Table 3 column order: NIN's 3x3 convs (never the 1x1 mlpconvs nor
# the classifier conv10), the CNN's convs and fc1 (never the classifier fc2), and in the low-rank nets
# both branches of every split conv.
SPARSIFIED = {
    "nin": list(_NIN_SPATIAL),
    "nin_lowrank": [f"{name}_{branch}" for name in _NIN_SPATIAL for branch in ("h", "v")],
    "admm_cnn": [*_CNN_CONV_NAMES, "fc1"],
    "admm_cnn_lowrank": [*(f"{name}_{branch}" for name in _CNN_CONV_NAMES for branch in ("h", "v")), "fc1"],
}


def sparsified_layers(model_name):
    """Names of the layers the paper sparsifies in ``model_name`` (a fresh list, in Table 3 order)."""
    if model_name not in SPARSIFIED:
        raise ValueError(f"Unknown model_name={model_name!r}; the ADMM paper models are {sorted(SPARSIFIED)}")
    return list(SPARSIFIED[model_name])


def nin(
    num_classes=10,
    input_shape=(32, 32, 3),
    low_rank=False,
    init_stddev=INIT_STDDEV,
    kernel_initializer=None,
    dropout=0.5,
    final_relu=True,
    name=None,
):
    """The modified NIN of Kiaee et al. 2016 Table 1, or with ``low_rank=True`` its low-rank version.

    conv1-3 (3x3x192, 1x1x160, 1x1x96), max-pool 3x3/2 + dropout, conv4-7 (3x3x192 twice, 1x1x192 twice),
    avg-pool 3x3/2 + dropout, conv8-10 (3x3x192, 1x1x192, 1x1x``num_classes``), global average pool.

    Args:
      num_classes: feature maps of conv10, which are the logits after the global pool.
      input_shape: ``(height, width, channels)``; ``(32, 32, 3)`` for CIFAR/SVHN, ``(28, 28, 1)`` works.
      low_rank: split each 3x3 conv into parallel 1x3 and 3x1 convs of 96 outputs each.
      init_stddev: standard deviation of the zero-mean normal kernel initialiser.
      kernel_initializer: instead of that normal, anything ``keras.initializers.get`` accepts (e.g.
        ``"he_normal"``); every layer gets its own copy.
      dropout: rate of the dropout after each of the two pools (0.5 in the official code).
      final_relu: keep conv10's ReLU, as the official code does.
      name: model name; defaults to ``nin`` or ``nin_lowrank``.
    """
    num_classes, input_shape = _check_shapes(num_classes, input_shape)
    init = _initializer_factory(init_stddev, kernel_initializer)
    dropout = _check_rate(dropout)
    inputs = keras.Input(shape=input_shape, name="image")
    x = inputs
    blocks = ((_NIN_BLOCK1, layers.MaxPooling2D), (_NIN_BLOCK2, layers.AveragePooling2D), (_NIN_BLOCK3, None))
    for index, (block, pooling) in enumerate(blocks, start=1):
        for conv_name, filters, size in block:
            if size == 3:
                x = _spatial_conv(x, filters, conv_name, init, low_rank)
            else:
                x = _conv(x, filters, size, conv_name, init)
        if pooling is not None:
            x = pooling(3, strides=2, padding="same", name=f"pool{index}")(x)
            if dropout:
                x = layers.Dropout(dropout, name=f"dropout{index}")(x)
    x = _conv(x, num_classes, 1, "conv10", init, activation="relu" if final_relu else None)
    outputs = layers.GlobalAveragePooling2D(name="global_pool")(x)
    return keras.Model(inputs, outputs, name=name or ("nin_lowrank" if low_rank else "nin"))


def admm_cnn(
    num_classes=10,
    input_shape=(32, 32, 3),
    low_rank=False,
    init_stddev=INIT_STDDEV,
    kernel_initializer=None,
    dropout=0.0,
    name=None,
):
    """The paper's custom CNN, or with ``low_rank=True`` its low-rank version (48/48 ... 32/32 branches).

    conv1 3x3x96, conv2 3x3x128, conv3 3x3x256 (each followed by ReLU and a 2x2 max-pool), conv4 3x3x64,
    flatten (4*4*64 = 1024 on 32x32 inputs, 576 on 28x28), fc1 256 + ReLU, fc2 ``num_classes`` logits.

    Args:
      num_classes: width of fc2.
      input_shape: ``(height, width, channels)``; at least 8x8 so the three pools leave a pixel.
      low_rank: split each conv into parallel 1x3 and 3x1 convs with half the outputs each.
      init_stddev: standard deviation of the zero-mean normal kernel initialiser.
      kernel_initializer: instead of that normal, anything ``keras.initializers.get`` accepts (e.g.
        ``"he_normal"``); every layer gets its own copy.
      dropout: rate of a dropout between fc1 and fc2. The paper names none, so the default 0.0 builds
        exactly Table 1's layers (and no Dropout layer at all); raise it if the baseline overfits.
      name: model name; defaults to ``admm_cnn`` or ``admm_cnn_lowrank``.
    """
    num_classes, input_shape = _check_shapes(num_classes, input_shape)
    init = _initializer_factory(init_stddev, kernel_initializer)
    dropout = _check_rate(dropout)
    if min(input_shape[:2]) < 8:
        raise ValueError(
            f"admm_cnn halves its input three times and needs at least 8x8; got input_shape={input_shape!r}"
        )
    inputs = keras.Input(shape=input_shape, name="image")
    x = inputs
    for index, (conv_name, filters) in enumerate(_CNN_CONVS, start=1):
        x = _spatial_conv(x, filters, conv_name, init, low_rank)
        if index <= 3:  # our choice: pools after conv1, conv2 and conv3.
            x = layers.MaxPooling2D(2, name=f"pool{index}")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(_CNN_FC1_UNITS, activation="relu", kernel_initializer=init(), name="fc1")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, kernel_initializer=init(), name="fc2")(x)
    return keras.Model(inputs, outputs, name=name or ("admm_cnn_lowrank" if low_rank else "admm_cnn"))


def _conv(x, filters, size, name, init, activation="relu"):
    return layers.Conv2D(filters, size, padding="same", activation=activation, kernel_initializer=init(), name=name)(x)


def _spatial_conv(x, filters, name, init, low_rank):
    """A sparsified 3x3 conv + ReLU, or its low-rank replacement."""
    if low_rank:
        return _low_rank_conv(x, filters, name, init)
    return _conv(x, filters, 3, name, init)


def _low_rank_conv(x, filters, name, init):
    """Parallel 1x3 and 3x1 convs with ``filters // 2`` outputs each, concatenated, then the ReLU."""
    half = filters // 2  # every width in Table 1 is even: 192, 96, 128, 256, 64.
    horizontal = layers.Conv2D(half, (1, 3), padding="same", kernel_initializer=init(), name=f"{name}_h")(x)
    vertical = layers.Conv2D(half, (3, 1), padding="same", kernel_initializer=init(), name=f"{name}_v")(x)
    # The ReLU acts on the concatenation, as in nin_c3_lr: each branch is linear up to the join.
    x = layers.Concatenate(name=f"{name}_concat")([horizontal, vertical])
    return layers.ReLU(name=f"{name}_relu")(x)


def _initializer_factory(init_stddev, kernel_initializer):
    """A function returning a fresh kernel initialiser for each layer.

    Fresh, because a Keras initialiser built with seed=None fixes its seed at construction: one shared
    instance would give every same-shaped kernel identical values.
    """
    if kernel_initializer is None:
        if isinstance(init_stddev, bool) or not isinstance(init_stddev, numbers.Real) or not init_stddev > 0:
            raise ValueError(f"init_stddev must be a positive number, got init_stddev={init_stddev!r}")
        stddev = float(init_stddev)
        return lambda: keras.initializers.RandomNormal(mean=0.0, stddev=stddev)
    if init_stddev != INIT_STDDEV:
        raise ValueError(
            f"Give init_stddev or kernel_initializer, not both; got init_stddev={init_stddev!r} and "
            f"kernel_initializer={kernel_initializer!r}"
        )
    template = keras.initializers.get(kernel_initializer)
    if isinstance(template, keras.initializers.Initializer):
        config = template.get_config()
        return lambda: type(template).from_config(dict(config))
    return lambda: template  # a plain function holds no seed, so sharing it is harmless


def _check_shapes(num_classes, input_shape):
    num_classes = registry.check_num_classes(num_classes)
    input_shape = registry.check_input_shape(input_shape)
    if len(input_shape) != 3:
        raise ValueError(
            f"The ADMM paper models take images (height, width, channels); got input_shape={input_shape!r}"
        )
    return num_classes, input_shape


def _check_rate(dropout):
    if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) or not 0 <= dropout < 1:
        raise ValueError(f"dropout must be a rate in [0, 1), got dropout={dropout!r}")
    return float(dropout)


@registry.register("nin")
def nin_builder(num_classes=10, input_shape=(32, 32, 3), **kwargs):
    """The modified NIN of Kiaee et al. 2016; see :func:`nin`."""
    return nin(num_classes, input_shape, low_rank=False, **kwargs)


@registry.register("nin_lowrank")
def nin_lowrank_builder(num_classes=10, input_shape=(32, 32, 3), **kwargs):
    """The low-rank NIN of Kiaee et al. 2016 (96 + 96 branches); see :func:`nin`."""
    return nin(num_classes, input_shape, low_rank=True, **kwargs)


@registry.register("admm_cnn")
def admm_cnn_builder(num_classes=10, input_shape=(32, 32, 3), **kwargs):
    """The custom CNN of Kiaee et al. 2016; see :func:`admm_cnn`."""
    return admm_cnn(num_classes, input_shape, low_rank=False, **kwargs)


@registry.register("admm_cnn_lowrank")
def admm_cnn_lowrank_builder(num_classes=10, input_shape=(32, 32, 3), **kwargs):
    """The low-rank custom CNN of Kiaee et al. 2016 (48/48, 64/64, 128/128, 32/32 branches); see :func:`admm_cnn`."""
    return admm_cnn(num_classes, input_shape, low_rank=True, **kwargs)

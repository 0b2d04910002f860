"""SDNet (Dai et al., NeurIPS 2022): ResNet-18/34 whose convolutions become CSC layers.

* ``sdnet18`` / ``sdnet34``: only the stem conv is a :class:`~sparse_keras.layers.CSCConv2D`, followed by BN
  and no ReLU (its codes are already non-negative); the rest is a standard ResNet-18/34 (basic blocks
  ``[2, 2, 2, 2]`` / ``[3, 4, 6, 3]``, widths 64-512, 1x1 conv + BN projection shortcuts).
* ``sdnet18_all`` / ``sdnet34_all``: every 3x3 conv of every block is a CSC layer too (stride-2 blocks use a
  strided CSC); a block is ``BN(CSC(BN(CSC(x))))`` with no ReLU between, plus the shortcut and a ReLU.
  ``shortcut=False`` drops the shortcut and that ReLU (the released yaml files' variant; our choice
  makes shortcuts the default).
* ``resnet18_cifar`` / ``resnet34_cifar``: the plain ResNet baselines (conv-BN-ReLU stem), named apart from
  the ImageNet ResNets of :mod:`sparse_keras.models.resnet_imagenet`.

Stems: the CIFAR stem (3x3 stride 1, no max-pool) for small images and the ImageNet stem (7x7 stride 2, then a
3x3/2 max-pool; the -All models put a 3x3/2 CSC layer, without BN, in place of the max-pool). ``stem=None``
picks the ImageNet stem for images of side >= 128.

Parity with the PyTorch originals: strided convs pad symmetrically (explicit ``ZeroPadding2D`` + 'valid'), so a
block's 3x3 path and its 1x1 shortcut sample the same pixels as in PyTorch; BN has ``eps=1e-5``, momentum 0.9.
The max-pool uses Keras 'same' padding (bottom/right only at stride 2), a one-pixel shift from PyTorch's.
SDNet-18 on CIFAR-10 has 11,173,962 trainable parameters, as the official model (a CSC layer has the
kernel of the conv it replaces and no bias).
"""

import keras
from keras import layers

from sparse_keras.layers.batch_norm import FusedBatchNormalization
from sparse_keras.layers.csc import CSCConv2D
from sparse_keras.models import registry
from sparse_keras.models.resnet_cifar import BN_EPSILON
from sparse_keras.models.resnet_cifar import BN_MOMENTUM
from sparse_keras.models.resnet_cifar import KERNEL_INITIALIZER

BLOCKS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}
WIDTHS = (64, 128, 256, 512)
STEMS = ("cifar", "imagenet")
IMAGENET_STEM_MIN_SIDE = 128  # below this the 4x downsampling of the ImageNet stem leaves too little image
CSC_MODES = ("none", "stem", "all")


def sdnet(
    depth,
    num_classes=10,
    input_shape=(32, 32, 3),
    csc="stem",
    stem=None,
    shortcut=True,
    lam=0.1,
    n_iter=2,
    csc_kwargs=None,
    classifier_activation=None,
    name=None,
):
    """Builds ResNet-``depth`` with CSC layers in place of its stem conv (``csc="stem"``), of every 3x3 conv
    (``"all"``) or of none (``"none"``, the plain ResNet baseline).

    Args:
      depth: 18 or 34.
      num_classes: width of the classifier (logits unless ``classifier_activation`` is given).
      input_shape: ``(height, width, channels)``; CSC layers need it fixed (their power iteration runs on it).
      csc: ``"stem"`` (SDNet), ``"all"`` (SDNet-All) or ``"none"`` (ResNet).
      stem: ``"cifar"``, ``"imagenet"`` or ``None`` (ImageNet stem for images of side >= 128).
      shortcut: keep the residual shortcuts (only ``csc="all"`` may drop them, as the official -All option).
      lam, n_iter: lambda and FISTA iterations of every CSC layer (0.1 and 2 in the paper).
      csc_kwargs: further :class:`~sparse_keras.layers.CSCConv2D` arguments for every CSC layer (e.g.
        ``{"non_negative": False}``, or ``{"power_iterations": 1}`` for a quick build whose step sizes
        the first training step refines).
      classifier_activation: activation of the classifier.
      name: model name; defaults to ``sdnet18``, ``sdnet18_all``, ``resnet18_cifar`` ...

    Returns:
      A functional ``keras.Model``.
    """
    if depth not in BLOCKS:
        raise ValueError(f"SDNet/ResNet depth must be one of {sorted(BLOCKS)}, got depth={depth!r}")
    if csc not in CSC_MODES:
        raise ValueError(f"csc must be one of {CSC_MODES}, got csc={csc!r}")
    if not shortcut and csc != "all":
        raise ValueError(f"shortcut=False is the SDNet-All no-shortcut variant; it needs csc='all', got csc={csc!r}")
    num_classes = registry.check_num_classes(num_classes)
    input_shape = registry.check_input_shape(input_shape)
    if len(input_shape) != 3:
        raise ValueError(f"SDNet takes images (height, width, channels); got input_shape={input_shape!r}")
    stem = _resolve_stem(stem, input_shape)
    make = _LayerFactory(csc, {"lam": lam, "n_iter": n_iter, **dict(csc_kwargs or {})})

    inputs = keras.Input(shape=input_shape, name="image")
    x = _apply_stem(inputs, make, stem)
    in_width = WIDTHS[0]
    for stage, (blocks, width) in enumerate(zip(BLOCKS[depth], WIDTHS), start=1):
        for block in range(1, blocks + 1):
            stride = 2 if stage > 1 and block == 1 else 1
            x = apply_block(x, in_width, width, stride, make, name=f"stage{stage}_block{block}", shortcut=shortcut)
            in_width = width
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = layers.Dense(num_classes, activation=classifier_activation, name="classifier")(x)
    return keras.Model(inputs, outputs, name=name or _default_name(depth, csc, shortcut))


def apply_block(x, in_width, width, stride, make, name, shortcut=True):
    """A basic block: ``relu(bn(conv(relu(bn(conv(x))))) + shortcut(x))``; with CSC convs (SDNet-All) the
    middle ReLU goes (codes are non-negative already) and ``shortcut=False`` drops the add and the last ReLU.
    """
    all_csc = make.csc == "all"
    y = make.conv3x3(x, width, stride, name=f"{name}_{'csc' if all_csc else 'conv'}1")
    y = batch_norm(f"{name}_bn1")(y)
    if not all_csc:
        y = layers.ReLU(name=f"{name}_relu1")(y)
    y = make.conv3x3(y, width, 1, name=f"{name}_{'csc' if all_csc else 'conv'}2")
    y = batch_norm(f"{name}_bn2")(y)
    if not shortcut:
        return y
    residual = x
    if stride != 1 or in_width != width:
        residual = make.conv(x, width, 1, stride, name=f"{name}_shortcut_conv")
        residual = batch_norm(f"{name}_shortcut_bn")(residual)
    y = layers.Add(name=f"{name}_add")([y, residual])
    return layers.ReLU(name=f"{name}_relu2")(y)


def batch_norm(name):
    return FusedBatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name)


class _LayerFactory:
    """Makes the convs of one network: plain Conv2D or CSC layers, with PyTorch's symmetric padding."""

    def __init__(self, csc, csc_kwargs):
        self.csc, self.csc_kwargs = csc, csc_kwargs

    def conv3x3(self, x, filters, stride, name):
        if self.csc == "all":
            return self.csc_layer(x, filters, 3, stride, name)
        return self.conv(x, filters, 3, stride, name)

    def csc_layer(self, x, filters, kernel_size, stride, name):
        return CSCConv2D(filters, kernel_size, strides=stride, name=name, **self.csc_kwargs)(x)

    @staticmethod
    def conv(x, filters, kernel_size, stride, name):
        padding = "same"
        if stride > 1 and kernel_size > 1:
            # Keras 'same' pads bottom/right only at stride 2; PyTorch pads (k - 1) / 2 on every side.
            x = layers.ZeroPadding2D((kernel_size - 1) // 2, name=f"{name}_pad")(x)
            padding = "valid"
        return layers.Conv2D(
            filters,
            kernel_size,
            strides=stride,
            padding=padding,
            use_bias=False,
            kernel_initializer=KERNEL_INITIALIZER,
            name=name,
        )(x)


def _apply_stem(inputs, make, stem):
    kernel_size, stride = (3, 1) if stem == "cifar" else (7, 2)
    if make.csc == "none":
        x = make.conv(inputs, WIDTHS[0], kernel_size, stride, name="stem_conv")
        x = batch_norm("stem_bn")(x)
        x = layers.ReLU(name="stem_relu")(x)
    else:
        # No ReLU after the stem's BN, as the official SDNet (the codes are non-negative already).
        x = make.csc_layer(inputs, WIDTHS[0], kernel_size, stride, name="stem_csc")
        x = batch_norm("stem_bn")(x)
    if stem == "imagenet":
        if make.csc == "all":
            x = make.csc_layer(x, WIDTHS[0], 3, 2, name="stem_pool_csc")  # replaces the max-pool, no BN after
        else:
            x = layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    return x


def _resolve_stem(stem, input_shape):
    if stem is None:
        return "imagenet" if min(input_shape[:2]) >= IMAGENET_STEM_MIN_SIDE else "cifar"
    if stem not in STEMS:
        raise ValueError(f"stem must be one of {STEMS} or None, got stem={stem!r}")
    return stem


def _default_name(depth, csc, shortcut):
    if csc == "none":
        return f"resnet{depth}_cifar"
    return f"sdnet{depth}" + ("_all" if csc == "all" else "") + ("" if shortcut else "_noshortcut")


def _register(name, depth, csc, doc, **fixed):
    def builder(num_classes=10, input_shape=(32, 32, 3), **kwargs):
        return sdnet(depth, num_classes=num_classes, input_shape=input_shape, csc=csc, **fixed, **kwargs)

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = f"{doc}; see `sdnet`."
    return registry.register(name)(builder)


sdnet18 = _register("sdnet18", 18, "stem", "SDNet-18: ResNet-18 with a CSC stem")
sdnet34 = _register("sdnet34", 34, "stem", "SDNet-34: ResNet-34 with a CSC stem")
sdnet18_all = _register("sdnet18_all", 18, "all", "SDNet-18-All: every 3x3 conv of ResNet-18 a CSC layer")
sdnet34_all = _register("sdnet34_all", 34, "all", "SDNet-34-All: every 3x3 conv of ResNet-34 a CSC layer")
resnet18_cifar = _register("resnet18_cifar", 18, "none", "ResNet-18 baseline (CIFAR stem)", stem="cifar")
resnet34_cifar = _register("resnet34_cifar", 34, "none", "ResNet-34 baseline (CIFAR stem)", stem="cifar")

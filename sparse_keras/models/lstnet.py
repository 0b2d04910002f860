"""The LST-Net family (Li et al. 2020 Tables I-VII): existing CNNs rebuilt from LST blocks.

CIFAR (official code, ``lld533/LST-Net``, authoritative where it disagrees with the seed tables):

* ``lstnet_resnet{20,32,44,56,110,164}``: every basic block of ResNet-(6n+2) becomes a pair of
  :class:`~sparse_keras.layers.lst.LSTBlockII`, so ``2n`` blocks per stage with ``16/32/64 * a**2`` output
  channels, a grouped 1x1 shortcut where shape changes, and a 1x1 "handler" conv back to 64 channels before
  global pooling so the classifier keeps ResNet's 64 inputs. ``block="lst1"`` builds the LST-I network of
  Table I(a) instead (dense shortcuts, no handler).
* ``lstnet_wrn{16_8,16_10,22_8,28_10,40_4}``: the same with ``2n`` blocks per stage for WRN-(6n+4) and core
  widths multiplied by the WRN width.

ImageNet / Places365 (no official code; built from Tables II, IV-VII with the CIFAR conventions):

* ``lstnet_resnet{18,34}``: two LST-II blocks per basic block (stages of 4/4/4/4 and 6/8/12/6 blocks, stride
  on the first block of stages 3-5), handler 2048 -> 512. Seed Table II(a) as extracted lost the stage-2
  repeat row and moved the first stride; these counts reproduce its R-34 repeats (7/11/5 after the first
  block) and, counted as the paper does (below), Table VIII's 7.71M / 13.50M exactly.
* ``lstnet_resnet{50,101}``: Table II(b): stage repeats 6/14/21/10 and 6/14/78/10, no handler.
* ``lstnet_vgg_fc/gap`` (VGG-11), ``lstnet_alexnet_fc/gap``, ``lstnet_shiftnet_a/b/c`` (LST-I blocks) and
  ``lstnet_mobilenetv2`` (:class:`~sparse_keras.layers.lst.InvertedLSTBlock`).

Parameter bookkeeping: the official T_s holds its ``a*a`` filters once and repeats them over channels
(``share_spatial=True``, our default). Li et al. 2020's ImageNet/Places counts are reproduced when every channel's
copy is counted, i.e. with ``share_spatial=False``; see the LST-Net section of README.md.

Every builder takes ``num_classes``, ``input_shape``, the LST hyper-parameters ``a``, ``kernel_size``,
``tau``, ``share_spatial`` and the T_s ``spatial_implementation`` (see ``SharedSpatialTransform``);
:func:`multiply_adds` counts a model's multiply-adds per example.
"""

import math
import numbers

import keras
from keras import layers

from sparse_keras.layers import lst
from sparse_keras.layers.batch_norm import FusedBatchNormalization
from sparse_keras.models import registry
from sparse_keras.utils import checks

CIFAR_WIDTHS = (16, 32, 64)
IMAGENET_CORE_WIDTHS = (64, 128, 256, 512)  # C_r_out of Table II; outputs are a*a times wider


# -- shared pieces ------------------------------------------------------------------------------------
def _conv(filters, kernel_size, strides=1, name=None):
    """A plain conv as the official ``nn.Conv2d(bias=False)`` re-initialised N(0, 2 / (k*k*out))."""
    return layers.Conv2D(filters, kernel_size, strides=strides, use_bias=False,
                         kernel_initializer=lst.he_normal_fan_out(), name=name)


def _conv_bn_relu(x, filters, kernel_size, strides, name, activation="relu"):
    pad = (kernel_size - 1) // 2
    if strides > 1 and pad:
        # Symmetric padding as PyTorch; Keras "same" would pad bottom/right only at stride 2.
        x = layers.ZeroPadding2D(pad, name=f"{name}_pad")(x)
        x = _conv(filters, kernel_size, strides, name=f"{name}_conv")(x)
    else:
        x = layers.Conv2D(filters, kernel_size, strides=strides, padding="same", use_bias=False,
                          kernel_initializer=lst.he_normal_fan_out(), name=f"{name}_conv")(x)
    x = FusedBatchNormalization(epsilon=lst.BN_EPSILON, momentum=lst.BN_MOMENTUM, name=f"{name}_bn")(x)
    return layers.ReLU(max_value=6.0 if activation == "relu6" else None, name=f"{name}_relu")(x)


def _classifier(x, num_classes, name="classifier"):
    """PyTorch's default ``nn.Linear`` init, U(+-1/sqrt(fan_in)) for weight and bias, as the official fc."""
    bound = 1.0 / math.sqrt(x.shape[-1])
    return layers.Dense(
        num_classes,
        kernel_initializer=keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform"),
        bias_initializer=keras.initializers.RandomUniform(-bound, bound),
        name=name,
    )(x)


def _fc_head(x, num_classes, hidden=4096, dropout=0.5):
    """The VGG/AlexNet classifier: flatten, two ReLU FC layers with dropout, then the classifier."""
    x = layers.Flatten(name="flatten")(x)
    for i in (1, 2):
        x = layers.Dropout(dropout, name=f"fc{i}_dropout")(x)
        x = layers.Dense(hidden, activation="relu", name=f"fc{i}")(x)
    return _classifier(x, num_classes)


def _gap_head(x, num_classes):
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return _classifier(x, num_classes)


def _image_input(input_shape, num_classes):
    num_classes = registry.check_num_classes(num_classes)
    input_shape = registry.check_input_shape(input_shape)
    if len(input_shape) != 3:
        raise ValueError(f"LST-Nets take images (height, width, channels); got input_shape={input_shape!r}")
    return keras.Input(shape=input_shape, name="image"), num_classes


def _lst_kwargs(a, kernel_size, tau, share_spatial, spatial_implementation):
    """The LST hyper-parameters every block of a network shares; ``a`` clamped to [2, k] as the code does."""
    kernel_size = checks.odd_kernel_size(kernel_size)
    a = max(2, min(checks.positive_int("a", a), kernel_size))
    return {"a": a, "kernel_size": kernel_size, "tau": tau, "share_spatial": share_spatial,
            "spatial_implementation": spatial_implementation}


def _stage(x, block_cls, filters, count, strides, name, **block_kwargs):
    for i in range(1, count + 1):
        x = block_cls(filters, strides=strides if i == 1 else 1, name=f"{name}_block{i}", **block_kwargs)(x)
    return x


# -- CIFAR (official code) ----------------------------------------------------------------------------
def lstnet_cifar(blocks_per_stage, num_classes=10, input_shape=(32, 32, 3), width=1, block="lst2", a=2,
                 kernel_size=3, tau=lst.DEFAULT_TAU, share_spatial=True, spatial_implementation="auto",
                 name=None):
    """The official ``ResNet_LST_Cifar`` / ``WRN_LST_Cifar`` (``block="lst2"``) or LST-I network.

    Args:
      blocks_per_stage: LST blocks in each of the three stages (twice the ResNet/WRN blocks).
      width: WRN width multiplier of the core widths 16/32/64 (1 for ResNet).
      block: ``"lst2"`` (official default, Table I(b)) or ``"lst1"`` (Table I(a), the code's "candidate").
      a, kernel_size, tau, share_spatial: LST hyper-parameters (defaults are the official ones).
      spatial_implementation: how T_s is computed (same numbers), see ``SharedSpatialTransform``.
    """
    count = checks.positive_int("blocks_per_stage", blocks_per_stage)
    width = checks.positive_int("width", width)
    if block not in ("lst1", "lst2"):
        raise ValueError(f"block must be 'lst1' or 'lst2', got block={block!r}")
    inputs, num_classes = _image_input(input_shape, num_classes)
    kwargs = _lst_kwargs(a, kernel_size, tau, share_spatial, spatial_implementation)
    x = _conv_bn_relu(inputs, 16, 3, 1, name="stem")
    for stage, core in enumerate(CIFAR_WIDTHS, start=1):
        strides = 1 if stage == 1 else 2
        if block == "lst2":
            x = _stage(x, lst.LSTBlockII, core * width * kwargs["a"] ** 2, count, strides, f"stage{stage}", **kwargs)
        else:
            x = _stage(x, lst.LSTBlockI, core * width, count, strides, f"stage{stage}", **kwargs)
    if block == "lst2":
        x = _conv_bn_relu(x, CIFAR_WIDTHS[-1] * width, 1, 1, name="handler")
    outputs = _gap_head(x, num_classes)
    return keras.Model(inputs, outputs, name=name or f"lstnet_{block}_cifar")


def _resnet_n(depth, offset, what):
    if isinstance(depth, bool) or not isinstance(depth, numbers.Integral) or depth < 6 + offset or (depth - offset) % 6:
        raise ValueError(f"A {what} has depth 6n + {offset} with n >= 1; got depth={depth!r}")
    return (int(depth) - offset) // 6


def lstnet_resnet_cifar(depth, num_classes=10, input_shape=(32, 32, 3), **kwargs):
    """LST-Net w.r.t. ResNet-``depth`` (6n + 2) on CIFAR: ``2n`` LST blocks per stage."""
    n = _resnet_n(depth, 2, "CIFAR ResNet")
    kwargs.setdefault("name", f"lstnet_resnet{depth}")
    return lstnet_cifar(2 * n, num_classes, input_shape, **kwargs)


def lstnet_wrn_cifar(depth, width, num_classes=10, input_shape=(32, 32, 3), **kwargs):
    """LST-Net w.r.t. WRN-``depth``-``width`` (depth 6n + 4) on CIFAR: ``2n`` LST-II blocks per stage."""
    n = _resnet_n(depth, 4, "WRN")
    kwargs.setdefault("name", f"lstnet_wrn{depth}_{width}")
    return lstnet_cifar(2 * n, num_classes, input_shape, width=width, **kwargs)


# -- ImageNet / Places365 (Li et al. 2020 Tables II, IV-VII) --------------------------------------------------
IMAGENET_RESNET_STAGES = {18: (4, 4, 4, 4), 34: (6, 8, 12, 6), 50: (6, 14, 21, 10), 101: (6, 14, 78, 10)}


def lstnet_resnet_imagenet(depth, num_classes=1000, input_shape=(224, 224, 3), a=2, kernel_size=3,
                           tau=lst.DEFAULT_TAU, share_spatial=True, spatial_implementation="auto", name=None):
    """LST-Net w.r.t. ResNet-18/34/50/101 on ImageNet (Table II): 7x7/2 stem, 3x3/2 max-pool, 4 LST-II stages."""
    if depth not in IMAGENET_RESNET_STAGES:
        raise ValueError(f"depth must be one of {sorted(IMAGENET_RESNET_STAGES)}, got depth={depth!r}")
    inputs, num_classes = _image_input(input_shape, num_classes)
    kwargs = _lst_kwargs(a, kernel_size, tau, share_spatial, spatial_implementation)
    x = _stem_7x7_maxpool(inputs, 64)
    for stage, (core, count) in enumerate(zip(IMAGENET_CORE_WIDTHS, IMAGENET_RESNET_STAGES[depth]), start=2):
        strides = 1 if stage == 2 else 2
        x = _stage(x, lst.LSTBlockII, core * kwargs["a"] ** 2, count, strides, f"conv{stage}", **kwargs)
    if depth < 50:  # Table II(a): a handler keeps the classifier at ResNet-18/34's 512 inputs
        x = _conv_bn_relu(x, 512, 1, 1, name="handler")
    return keras.Model(inputs, _gap_head(x, num_classes), name=name or f"lstnet_resnet{depth}")


def _stem_7x7_maxpool(x, filters):
    x = _conv_bn_relu(x, filters, 7, 2, name="stem")
    # Zero padding equals PyTorch's -inf padding here: the input is a ReLU output, >= 0.
    x = layers.ZeroPadding2D(1, name="stem_pool_pad")(x)
    return layers.MaxPooling2D(3, strides=2, name="stem_pool")(x)


VGG11_STAGES = ((128,), (256, 256), (512, 512), (512, 512))  # after the 64-filter stem conv and a pool


def lstnet_vgg(num_classes=1000, input_shape=(224, 224, 3), head="fc", a=2, kernel_size=3,
               tau=lst.DEFAULT_TAU, share_spatial=True, spatial_implementation="auto", name=None):
    """LST-Net w.r.t. VGG-11 (Table IV): a 3x3 stem conv, LST-I blocks, 2x2 max-pools; FC or GAP head."""
    inputs, num_classes = _image_input(input_shape, num_classes)
    kwargs = _lst_kwargs(a, kernel_size, tau, share_spatial, spatial_implementation)
    x = _conv_bn_relu(inputs, 64, 3, 1, name="stem")
    x = layers.MaxPooling2D(2, name="pool1")(x)
    for stage, widths in enumerate(VGG11_STAGES, start=2):
        for i, filters in enumerate(widths, start=1):
            x = lst.LSTBlockI(filters, name=f"stage{stage}_block{i}", **kwargs)(x)
        x = layers.MaxPooling2D(2, name=f"pool{stage}")(x)
    outputs = _head(x, num_classes, head)
    return keras.Model(inputs, outputs, name=name or f"lstnet_vgg_{head}")


def lstnet_alexnet(num_classes=1000, input_shape=(224, 224, 3), head="fc", a=2, kernel_size=3,
                   tau=lst.DEFAULT_TAU, share_spatial=True, spatial_implementation="auto", name=None):
    """LST-Net w.r.t. AlexNet (Table V): 11x11/4 stem, LST-I 192, 384, 256, 256, 3x3/2 max-pools."""
    inputs, num_classes = _image_input(input_shape, num_classes)
    kwargs = _lst_kwargs(a, kernel_size, tau, share_spatial, spatial_implementation)
    x = layers.ZeroPadding2D(2, name="stem_pad")(inputs)
    x = _alexnet_stem(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool1")(x)
    x = lst.LSTBlockI(192, name="stage2_block1", **kwargs)(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool2")(x)
    for i, filters in enumerate((384, 256, 256), start=1):
        x = lst.LSTBlockI(filters, name=f"stage3_block{i}", **kwargs)(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool3")(x)
    outputs = _head(x, num_classes, head)
    return keras.Model(inputs, outputs, name=name or f"lstnet_alexnet_{head}")


def _alexnet_stem(x):
    x = _conv(64, 11, 4, name="stem_conv")(x)
    x = FusedBatchNormalization(epsilon=lst.BN_EPSILON, momentum=lst.BN_MOMENTUM, name="stem_bn")(x)
    return layers.ReLU(name="stem_relu")(x)


def _head(x, num_classes, head):
    if head == "fc":
        return _fc_head(x, num_classes)
    if head == "gap":
        return _gap_head(x, num_classes)
    raise ValueError(f"head must be 'fc' or 'gap', got head={head!r}")


# (kernel size, output multiple of the base width, stride-1 repeats after the strided block); Table VI.
SHIFTNET_STAGES = ((5, 1, 4), (5, 2, 2), (3, 4, 1), (3, 8, 1))
SHIFTNET_BASE_WIDTHS = {"a": 32, "b": 16, "c": 16}


def lstnet_shiftnet(variant, num_classes=1000, input_shape=(224, 224, 3), a=2, tau=lst.DEFAULT_TAU,
                    share_spatial=True, spatial_implementation="auto", name=None):
    """LST-Net w.r.t. ShiftNet-A/B/C (Table VI): 7x7/2 stem, four stride-2 LST-I stages (5x5, 5x5, 3x3, 3x3).

    Base width 32 (A) or 16 (B, C). Only B's repeat column survived the seed's extraction; A and C use it
    too, so C equals B here (see the LST-Net section of README.md).
    """
    if variant not in SHIFTNET_BASE_WIDTHS:
        raise ValueError(f"variant must be one of {sorted(SHIFTNET_BASE_WIDTHS)}, got variant={variant!r}")
    inputs, num_classes = _image_input(input_shape, num_classes)
    base = SHIFTNET_BASE_WIDTHS[variant]
    x = _conv_bn_relu(inputs, base, 7, 2, name="stem")
    for stage, (k, multiple, repeats) in enumerate(SHIFTNET_STAGES, start=1):
        kwargs = _lst_kwargs(a, k, tau, share_spatial, spatial_implementation)
        x = _stage(x, lst.LSTBlockI, base * multiple, 1 + repeats, 2, f"stage{stage}", **kwargs)
    return keras.Model(inputs, _gap_head(x, num_classes), name=name or f"lstnet_shiftnet_{variant}")


# (expansion E, output channels, repeats, stride of the first), Table VII as printed.
MOBILENETV2_STAGES = (
    (1, 16, 1, 1), (6, 24, 1, 2), (6, 24, 1, 1), (6, 32, 1, 2), (6, 32, 2, 1), (6, 64, 1, 1), (6, 64, 3, 1),
    (6, 96, 1, 2), (6, 96, 2, 1), (6, 160, 1, 2), (6, 160, 2, 1), (6, 320, 1, 1),
)


def lstnet_mobilenetv2_imagenet(num_classes=1000, input_shape=(224, 224, 3), a=2, kernel_size=3,
                                tau=lst.RELU6_ST_TAU, share_spatial=True, spatial_implementation="auto", name=None):
    """LST-Net w.r.t. MobileNetV2 (Table VII, as printed): 3x3/1 stem to 16, modified LST-I blocks, PW 1280."""
    inputs, num_classes = _image_input(input_shape, num_classes)
    kwargs = _lst_kwargs(a, kernel_size, tau, share_spatial, spatial_implementation)
    x = _conv_bn_relu(inputs, 16, 3, 1, name="stem", activation="relu6")
    index = 0
    for expansion, filters, repeats, strides in MOBILENETV2_STAGES:
        for i in range(repeats):
            index += 1
            x = lst.InvertedLSTBlock(filters, strides=strides if i == 0 else 1, expansion=expansion,
                                     name=f"block{index}", **kwargs)(x)
    x = _conv_bn_relu(x, 1280, 1, 1, name="head", activation="relu6")
    return keras.Model(inputs, _gap_head(x, num_classes), name=name or "lstnet_mobilenetv2")


# -- multiply-adds ------------------------------------------------------------------------------------
def multiply_adds(model):
    """Multiply-adds of one example through ``model`` (convs, depthwise convs, dense layers, LST blocks).

    BN, activations, pooling and additions are not counted (the convention of the papers' FLOPs columns).
    Each layer must have been called once in the model's graph, so that its input and output shapes are known.
    """
    total = 0
    for layer in model.layers:
        if isinstance(layer, (lst._LSTBlock, lst.SharedSpatialTransform)):
            total += layer.multiply_adds(tuple(layer.input.shape[1:]))
        elif isinstance(layer, layers.DepthwiseConv2D):
            out = layer.output.shape
            total += math.prod(out[1:]) * math.prod(layer.kernel_size)
        elif isinstance(layer, layers.Conv2D):
            out = layer.output.shape
            total += math.prod(out[1:]) * math.prod(layer.kernel_size) * layer.input.shape[-1] // layer.groups
        elif isinstance(layer, layers.Dense):
            total += layer.input.shape[-1] * layer.units
    return int(total)


# -- registry ---------------------------------------------------------------------------------------
def _register(name, build, doc):
    def builder(num_classes=None, input_shape=None, **kwargs):
        if num_classes is not None:
            kwargs["num_classes"] = num_classes
        if input_shape is not None:
            kwargs["input_shape"] = input_shape
        return build(**kwargs)

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = doc
    return registry.register(name)(builder)


def _register_cifar_resnet(depth):
    return _register(
        f"lstnet_resnet{depth}",
        lambda **kw: lstnet_resnet_cifar(depth, **kw),
        f"LST-Net w.r.t. ResNet-{depth} on CIFAR ({(depth - 2) // 3} LST-II blocks per stage); see `lstnet_cifar`.",
    )


def _register_wrn(depth, width):
    return _register(
        f"lstnet_wrn{depth}_{width}",
        lambda **kw: lstnet_wrn_cifar(depth, width, **kw),
        f"LST-Net w.r.t. WRN-{depth}-{width} on CIFAR; see `lstnet_wrn_cifar`.",
    )


def _register_imagenet(name, build, doc):
    def with_defaults(**kw):
        kw.setdefault("num_classes", 1000)
        kw.setdefault("input_shape", (224, 224, 3))
        return build(**kw)

    return _register(name, with_defaults, doc)


lstnet_resnet20, lstnet_resnet32, lstnet_resnet44, lstnet_resnet56, lstnet_resnet110, lstnet_resnet164 = (
    _register_cifar_resnet(d) for d in (20, 32, 44, 56, 110, 164)
)
lstnet_wrn16_8, lstnet_wrn16_10, lstnet_wrn22_8, lstnet_wrn28_10, lstnet_wrn40_4 = (
    _register_wrn(d, w) for d, w in ((16, 8), (16, 10), (22, 8), (28, 10), (40, 4))
)
lstnet_resnet18, lstnet_resnet34, lstnet_resnet50, lstnet_resnet101 = (
    _register_imagenet(f"lstnet_resnet{d}", lambda d=d, **kw: lstnet_resnet_imagenet(d, **kw),
                       f"LST-Net w.r.t. ResNet-{d} on ImageNet (Table II); see `lstnet_resnet_imagenet`.")
    for d in (18, 34, 50, 101)
)
lstnet_vgg_fc, lstnet_vgg_gap = (
    _register_imagenet(f"lstnet_vgg_{h}", lambda h=h, **kw: lstnet_vgg(head=h, **kw),
                       f"LST-Net w.r.t. VGG-11 with the {h.upper()} head (Table IV); see `lstnet_vgg`.")
    for h in ("fc", "gap")
)
lstnet_alexnet_fc, lstnet_alexnet_gap = (
    _register_imagenet(f"lstnet_alexnet_{h}", lambda h=h, **kw: lstnet_alexnet(head=h, **kw),
                       f"LST-Net w.r.t. AlexNet with the {h.upper()} head (Table V); see `lstnet_alexnet`.")
    for h in ("fc", "gap")
)
lstnet_shiftnet_a, lstnet_shiftnet_b, lstnet_shiftnet_c = (
    _register_imagenet(f"lstnet_shiftnet_{v}", lambda v=v, **kw: lstnet_shiftnet(v, **kw),
                       f"LST-Net w.r.t. ShiftNet-{v.upper()} (Table VI); see `lstnet_shiftnet`.")
    for v in ("a", "b", "c")
)
lstnet_mobilenetv2 = _register_imagenet(
    "lstnet_mobilenetv2",
    lstnet_mobilenetv2_imagenet,
    "LST-Net w.r.t. MobileNetV2 (Table VII); see `lstnet_mobilenetv2_imagenet`.",
)

"""LST-Net's learnable sparse transform blocks (Li et al., ECCV 2020; Li et al. 2020).

A conv layer is replaced by three learnable transforms, each a cheap conv:

* T_r, the resizing transform: a 1x1 conv, randomly initialised (He normal, fan-out, as the official code);
* T_c, the channel transform: a 1x1 conv initialised to the DCT (:class:`~sparse_keras.initializers.ChannelDCT`);
* T_s, the spatial transform: a depthwise k x k conv that gives every channel the same ``a * a`` filters,
  initialised to the separable 2-D DCT (:class:`SharedSpatialTransform`).

The transforms make the features sparse in a transform domain, and soft thresholding (:class:`SoftThreshold`,
the proximal operator of the l1 norm) removes the small coefficients; the "ReLU-ST" scheme puts a ReLU after
one BN and ST after the T_c BN and after the residual sum. Nothing is frozen: every DCT-initialised weight
trains like any other.

Blocks (all composite layers, serializable, ``keras.ops`` only):

* :class:`LSTBlockII`: T_r -> BN -> ReLU -> T_c -> BN -> ST -> T_s (stride) -> BN, + D(x), ST. The default
  for ResNet/WRN; ``C_s = filters / a**2``.
* :class:`LSTBlockI`: T_c -> BN -> ST -> T_s (stride) -> BN -> ReLU -> T_r -> BN, + D(x), ST; ``C_s = filters``.
* :class:`InvertedLSTBlock`: Li et al.'s (2020) modified LST-I for MobileNetV2's inverted residuals (ReLU6-ST).

Spatial padding is explicit and symmetric, ``(k - 1) / 2`` per side, as PyTorch pads: Keras' ``"same"``
pads only bottom/right with stride 2 on even sizes, which would shift every downsampled map by a pixel.
"""

import math

import keras
from keras import layers

from sparse_keras import initializers
from sparse_keras.layers.batch_norm import FusedBatchNormalization
from sparse_keras.layers.lst_transforms import DEFAULT_TAU
from sparse_keras.layers.lst_transforms import RELU6_ST_TAU
from sparse_keras.layers.lst_transforms import GroupedPointwise
from sparse_keras.layers.lst_transforms import SharedSpatialTransform
from sparse_keras.layers.lst_transforms import SoftThreshold
from sparse_keras.layers.lst_transforms import channels_of
from sparse_keras.layers.lst_transforms import check_spatial_implementation
from sparse_keras.layers.lst_transforms import strided_shape
from sparse_keras.utils import checks

BN_EPSILON = 1e-5  # PyTorch's BatchNorm2d defaults (our choice)
BN_MOMENTUM = 0.9
SHORTCUTS = ("grouped", "dense")
ACTIVATIONS = ("relu", "relu6")


def he_normal_fan_out():
    """The official re-initialisation of every ``nn.Conv2d``: ``N(0, 2 / (k * k * out_channels))``."""
    return keras.initializers.VarianceScaling(2.0, mode="fan_out", distribution="untruncated_normal")


class _LSTBlock(layers.Layer):
    """What the LST blocks share: arguments, sublayer factories, the shortcut D, MAC counting."""

    def __init__(self, filters, strides=1, a=2, kernel_size=3, tau=DEFAULT_TAU, shortcut="grouped",
                 activation="relu", share_spatial=True, spatial_implementation="auto", **kwargs):
        super().__init__(**kwargs)
        self.filters = checks.positive_int("filters", filters)
        self.strides = checks.positive_int("strides", strides)
        self.kernel_size = checks.odd_kernel_size(kernel_size)
        # The official blocks clamp a to [2, k]: a = 1 would make T_s a single blur filter.
        self.a = max(2, min(checks.positive_int("a", a), self.kernel_size))
        self.tau = checks.non_negative_float("tau", tau)
        if shortcut not in SHORTCUTS:
            raise ValueError(f"shortcut must be one of {SHORTCUTS}, got shortcut={shortcut!r}")
        self.shortcut = shortcut
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got activation={activation!r}")
        self.activation = activation
        self.share_spatial = bool(share_spatial)
        self.spatial_implementation = check_spatial_implementation(spatial_implementation)

    # -- sublayer factories ---------------------------------------------------------------------------
    def _pointwise(self, filters, name, dct):
        init = initializers.ChannelDCT() if dct else he_normal_fan_out()
        return layers.Conv2D(filters, 1, use_bias=False, kernel_initializer=init, name=name)

    def _spatial(self, a, name):
        return SharedSpatialTransform(a, self.kernel_size, self.strides, share=self.share_spatial,
                                      implementation=self.spatial_implementation, name=name)

    def _bn(self, name):
        return FusedBatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name)

    def _relu(self, name):
        return layers.ReLU(max_value=6.0 if self.activation == "relu6" else None, name=name)

    def _build_shortcut(self, in_channels, input_shape):
        """D: identity when shape is kept; else a grouped (LST-II nets) or dense (LST-I nets) 1x1 + BN."""
        self.shortcut_conv = self.shortcut_bn = None
        if self.strides == 1 and in_channels == self.filters:
            return
        if self.shortcut == "grouped":
            if self.filters % in_channels:
                raise ValueError(
                    f"A grouped 1x1 shortcut (groups = input channels) needs filters={self.filters} to be a "
                    f"multiple of the {in_channels} input channels; use shortcut='dense'"
                )
            multiplier = self.filters // in_channels
            # PyTorch's N(0, 2 / out_channels) for the grouped conv.
            self.shortcut_conv = GroupedPointwise(
                multiplier, strides=self.strides,
                kernel_initializer=keras.initializers.RandomNormal(stddev=math.sqrt(2.0 / self.filters)),
                name="shortcut_conv",
            )
        else:
            self.shortcut_conv = layers.Conv2D(
                self.filters, 1, strides=self.strides, use_bias=False,
                kernel_initializer=he_normal_fan_out(), name="shortcut_conv",
            )
        self.shortcut_bn = self._bn("shortcut_bn")
        self.shortcut_conv.build(input_shape)
        self.shortcut_bn.build(strided_shape(input_shape, self.strides, self.filters))

    def _apply_shortcut(self, inputs, training):
        if self.shortcut_conv is None:
            return inputs
        return self.shortcut_bn(self.shortcut_conv(inputs), training=training)

    def _shortcut_multiply_adds(self, input_shape):
        if self.shortcut_conv is None:
            return 0
        h, w, c = self.compute_output_shape((None, *input_shape[-3:]))[1:]
        per_output = 1 if self.shortcut == "grouped" else input_shape[-1]
        return h * w * c * per_output

    def compute_output_shape(self, input_shape):
        return strided_shape(input_shape, self.strides, self.filters)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "strides": self.strides,
            "a": self.a,
            "kernel_size": self.kernel_size,
            "tau": self.tau,
            "shortcut": self.shortcut,
            "activation": self.activation,
            "share_spatial": self.share_spatial,
            "spatial_implementation": self.spatial_implementation,
        }


@keras.saving.register_keras_serializable(package="sparse_keras")
class LSTBlockII(_LSTBlock):
    """The LST-II bottleneck (official ``LST2Block``): resize, channel, spatial.

    ``y = ST(BN(T_s(ST(BN(T_c(ReLU(BN(T_r(x)))))))) + D(x))`` with ``C_s = filters / a**2`` channels in the
    core, T_r and T_c at input resolution and the stride in T_s and D only. D is the identity when stride
    and width are kept, else (official CIFAR code) a grouped 1x1 conv with ``groups = in_channels`` + BN.

    Args:
      filters: output channels, a multiple of ``a * a``.
      strides: stride of T_s and D.
      a: spatial multiplication rate, clamped to ``[2, kernel_size]`` as in the official code.
      kernel_size: odd side of the T_s filters.
      tau: threshold of both STs.
      shortcut: ``"grouped"`` (official) or ``"dense"`` 1x1 conv for D.
      activation: ``"relu"`` or ``"relu6"``.
      share_spatial: share T_s over channels (official) or keep a copy per channel.
      spatial_implementation: how T_s is computed, see :class:`SharedSpatialTransform`.
      resize_width: channels between T_r and T_c; ``None`` (the paper) for ``C_s``. A shrunk block
        (:mod:`sparse_keras.shrinking`) has fewer when some T_r outputs were constant.
    """

    def __init__(self, filters, strides=1, a=2, kernel_size=3, tau=DEFAULT_TAU, shortcut="grouped",
                 resize_width=None, **kwargs):
        super().__init__(filters, strides, a, kernel_size, tau, shortcut, **kwargs)
        self.resize_width = None if resize_width is None else checks.positive_int("resize_width", resize_width)

    def build(self, input_shape):
        in_channels = channels_of(input_shape, self.name)
        a2 = self.a * self.a
        if self.filters % a2:
            raise ValueError(f"LSTBlockII needs filters divisible by a*a={a2}, got filters={self.filters}")
        core = self.filters // a2
        core_shape = (*input_shape[:-1], core)
        self.resize = self.resize_width or core
        self.resize_conv = self._pointwise(self.resize, "resize_conv", dct=False)
        self.resize_bn, self.resize_relu = self._bn("resize_bn"), self._relu("resize_relu")
        self.channel_conv, self.channel_bn = self._pointwise(core, "channel_conv", dct=True), self._bn("channel_bn")
        self.channel_st = SoftThreshold(self.tau, name="channel_st")
        self.spatial, self.spatial_bn = self._spatial(self.a, "spatial"), self._bn("spatial_bn")
        self.output_st = SoftThreshold(self.tau, name="output_st")
        self.resize_conv.build(input_shape)
        self.resize_bn.build((*input_shape[:-1], self.resize))
        self.channel_conv.build((*input_shape[:-1], self.resize))
        self.channel_bn.build(core_shape)
        self.spatial.build(core_shape)
        self.spatial_bn.build(self.compute_output_shape(input_shape))
        self._build_shortcut(in_channels, input_shape)

    def call(self, inputs, training=None):
        y = self.resize_relu(self.resize_bn(self.resize_conv(inputs), training=training))
        y = self.channel_st(self.channel_bn(self.channel_conv(y), training=training))
        y = self.spatial_bn(self.spatial(y), training=training)
        return self.output_st(y + self._apply_shortcut(inputs, training))

    def multiply_adds(self, input_shape):
        """Multiply-adds of one example with input ``(H, W, C_in)`` (BN and ST not counted)."""
        h, w, c_in = input_shape[-3:]
        core = self.filters // (self.a * self.a)
        return (h * w * (c_in + core) * self.resize + self.spatial.multiply_adds((h, w, core))
                + self._shortcut_multiply_adds(input_shape))

    def get_config(self):
        return {**super().get_config(), "resize_width": self.resize_width}


@keras.saving.register_keras_serializable(package="sparse_keras")
class LSTBlockI(_LSTBlock):
    """The LST-I bottleneck (official ``LST1Block``): channel, spatial, resize.

    ``y = ST(BN(T_r(ReLU(BN(T_s(ST(BN(T_c(x))))))) + D(x))`` with ``C_s = filters`` and ``a**2 * filters``
    channels after T_s (Li et al. 2020 Tables I(a), IV-VI: the ``a^2 x C_s`` column). T_c maps ``C_in -> filters``
    with the official ``dct_init(filters, C_in)``. D defaults to the dense 1x1 conv of the official LST-I
    network. Arguments as :class:`LSTBlockII`, and ``core_width``: channels between T_c and T_s, ``None``
    (the paper) for ``C_s``; a shrunk block (:mod:`sparse_keras.shrinking`) has fewer when some T_c outputs
    were zero.
    """

    def __init__(self, filters, strides=1, a=2, kernel_size=3, tau=DEFAULT_TAU, shortcut="dense", core_width=None,
                 **kwargs):
        super().__init__(filters, strides, a, kernel_size, tau, shortcut, **kwargs)
        self.core_width = None if core_width is None else checks.positive_int("core_width", core_width)

    def build(self, input_shape):
        self._build_lst1(input_shape, core=self.filters, spatial_a=self.a, channel_transform=True, residual=True)

    def _build_lst1(self, input_shape, core, spatial_a, channel_transform, residual):
        """Creates and builds T_c (optional), T_s, T_r, their BNs and activations, and D (if ``residual``)."""
        in_channels = channels_of(input_shape, self.name)
        if channel_transform and self.core_width is not None:
            core = self.core_width
        self.core, self.residual = core, residual
        core_shape = (*input_shape[:-1], core)
        wide_shape = strided_shape(input_shape, self.strides, core * spatial_a * spatial_a)
        self.channel_conv = self.channel_bn = self.channel_st = None
        if channel_transform:
            self.channel_conv = self._pointwise(core, "channel_conv", dct=True)
            self.channel_bn, self.channel_st = self._bn("channel_bn"), SoftThreshold(self.tau, name="channel_st")
            self.channel_conv.build(input_shape)
            self.channel_bn.build(core_shape)
        self.spatial, self.spatial_bn = self._spatial(spatial_a, "spatial"), self._bn("spatial_bn")
        self.spatial_relu = self._relu("spatial_relu")
        self.resize_conv = self._pointwise(self.filters, "resize_conv", dct=False)
        self.resize_bn, self.output_st = self._bn("resize_bn"), SoftThreshold(self.tau, name="output_st")
        self.spatial.build(core_shape)
        self.spatial_bn.build(wide_shape)
        self.resize_conv.build(wide_shape)
        self.resize_bn.build(self.compute_output_shape(input_shape))
        self.shortcut_conv = self.shortcut_bn = None
        if residual:
            self._build_shortcut(in_channels, input_shape)

    def call(self, inputs, training=None):
        y = inputs
        if self.channel_conv is not None:
            y = self.channel_st(self.channel_bn(self.channel_conv(y), training=training))
        y = self.spatial_relu(self.spatial_bn(self.spatial(y), training=training))
        y = self.resize_bn(self.resize_conv(y), training=training)
        if self.residual:
            y = y + self._apply_shortcut(inputs, training)
        return self.output_st(y)

    def multiply_adds(self, input_shape):
        h, w, c_in = input_shape[-3:]
        ho, wo, _ = self.compute_output_shape((None, h, w, c_in))[1:]
        wide = self.core * self.spatial.a * self.spatial.a
        channel = h * w * c_in * self.core if self.channel_conv is not None else 0
        return (channel + self.spatial.multiply_adds((h, w, self.core)) + ho * wo * wide * self.filters
                + self._shortcut_multiply_adds(input_shape))

    def get_config(self):
        return {**super().get_config(), "core_width": self.core_width}


@keras.saving.register_keras_serializable(package="sparse_keras")
class InvertedLSTBlock(LSTBlockI):
    """Li et al. 2020's modified LST-I bottleneck, replacing MobileNetV2's inverted residual (Fig. 3).

    The LST-I order with the expanded width ``E * C_in`` after T_s (``C_s = E * C_in / a**2``) and the three
    changes of Li et al. 2020 section 2: (1) ReLU6 for ReLU and ST with ``tau = 1e-8`` (the "ReLU6-ST" scheme,
    almost linear, as MobileNetV2's linear bottleneck wants); (2) with ``E = 1`` no T_c and its BN: T_s reads
    the input directly with one shared filter per channel, so the width stays ``C_in`` (our reading; spec
    1.4 (our choice; the paper does not say)); (3) with ``E > 1`` and a change of stride or width, no D and no residual sum.

    Args:
      filters: output channels ``C_out``.
      expansion: MobileNetV2's expansion rate ``E``; ``E * C_in`` must be divisible by ``a * a`` when ``E > 1``.
      strides, a, kernel_size, share_spatial: as :class:`LSTBlockII`; ``core_width`` as :class:`LSTBlockI`.
      tau: threshold of the STs (default :data:`RELU6_ST_TAU`).
    """

    def __init__(self, filters, strides=1, expansion=6, a=2, kernel_size=3, tau=RELU6_ST_TAU, **kwargs):
        kwargs.setdefault("activation", "relu6")
        super().__init__(filters, strides, a, kernel_size, tau, **kwargs)
        self.expansion = checks.positive_int("expansion", expansion)

    def build(self, input_shape):
        in_channels = channels_of(input_shape, self.name)
        wide = self.expansion * in_channels
        residual = self.expansion == 1 or (self.strides == 1 and in_channels == self.filters)
        if self.expansion == 1:
            self._build_lst1(input_shape, in_channels, spatial_a=1, channel_transform=False, residual=residual)
            return
        if wide % (self.a * self.a):
            raise ValueError(
                f"InvertedLSTBlock needs expansion * in_channels = {wide} divisible by a*a={self.a * self.a}"
            )
        self._build_lst1(input_shape, wide // (self.a * self.a), self.a, channel_transform=True, residual=residual)

    def get_config(self):
        return {**super().get_config(), "expansion": self.expansion}

"""The transforms LST-Net's blocks are made of (Li et al., ECCV 2020): soft thresholding, the shared
spatial DCT transform T_s and the grouped pointwise conv of the shortcut.

The blocks themselves are in :mod:`sparse_keras.layers.lst`; see its docstring for how they fit together.
"""

import keras
from keras import layers, ops

from sparse_keras import initializers
from sparse_keras.utils import checks

DEFAULT_TAU = 1e-4  # the official --tau
RELU6_ST_TAU = 1e-8  # Li et al. 2020 sec. 2: ST becomes (almost) linear in MobileNetV2's linear bottleneck
SPATIAL_IMPLEMENTATIONS = ("auto", "depthwise", "reshape")


@keras.saving.register_keras_serializable(package="sparse_keras")
class SoftThreshold(layers.Layer):
    """Soft thresholding ``ST_tau(x) = sign(x) * max(|x| - tau, 0)`` (PyTorch ``softshrink``).

    ``tau`` is a fixed hyper-parameter, the same for every ST of a network (official default 1e-4; the
    ReLU6-ST scheme of MobileNetV2 uses :data:`RELU6_ST_TAU`). The gradient is 1 where ``|x| > tau`` and 0
    inside the dead zone. Written as ``x - clip(x, -tau, tau)``, one fused elementwise op on every backend.
    """

    def __init__(self, tau=DEFAULT_TAU, **kwargs):
        super().__init__(**kwargs)
        self.tau = checks.non_negative_float("tau", tau)
        self.supports_masking = True

    def call(self, inputs):
        return inputs - ops.clip(inputs, -self.tau, self.tau)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "tau": self.tau}


@keras.saving.register_keras_serializable(package="sparse_keras")
class SharedSpatialTransform(layers.Layer):
    """T_s: a depthwise ``k x k`` conv whose ``a * a`` filters are shared by every input channel.

    The official code holds one ``(a*a, 1, k, k)`` tensor and repeats it over the ``C`` channels, so a
    block has ``k * k * a * a`` spatial weights (36 for k=3, a=2) whatever its width; the repeat is done
    here inside ``call`` (``ops.tile``), so the gradient of the shared filters sums over channels. Output
    channel ``c * a*a + m`` is channel ``c`` filtered by filter ``m`` (PyTorch's grouped-conv order).

    ``share=False`` keeps one copy per channel (same DCT start): a plain depthwise conv with
    ``C * k * k * a * a`` weights, which is how the paper's ImageNet parameter counts are tallied.

    Two equal computations of the shared transform (``implementation``): ``"depthwise"`` tiles the filters
    and runs a depthwise conv; ``"reshape"`` folds the channels into the batch, ``(N, H, W, C) -> (N*C, H,
    W, 1)``, and runs one ordinary conv with the ``a*a`` filters. XLA on CPU differentiates grouped convs
    30-50x slower than the folded one, TensorFlow's own depthwise kernels are as fast as the fold; ``"auto"``
    picks ``"reshape"`` on JAX and ``"depthwise"`` elsewhere (``benchmarks/lst_speed.py`` compares them).

    Args:
      a: the spatial multiplication rate; ``a * a`` output channels per input channel. ``a = 1`` gives the
        single DC filter (used by the ``E = 1`` inverted block).
      kernel_size: odd side ``k`` of the filters.
      strides: spatial stride.
      share: share the filters across channels (the official CIFAR implementation) or not.
      implementation: ``"auto"``, ``"depthwise"`` or ``"reshape"`` (shared filters only; same numbers).
    """

    def __init__(self, a=2, kernel_size=3, strides=1, share=True, implementation="auto", **kwargs):
        super().__init__(**kwargs)
        self.a = checks.positive_int("a", a)
        self.kernel_size = checks.odd_kernel_size(kernel_size)
        self.strides = checks.positive_int("strides", strides)
        self.share = bool(share)
        self.implementation = check_spatial_implementation(implementation)

    def build(self, input_shape):
        channels = channels_of(input_shape, self.name)
        self.channels = channels
        shape = (self.kernel_size, self.kernel_size, 1 if self.share else channels, self.a * self.a)
        self.kernel = self.add_weight(name="kernel", shape=shape, initializer=initializers.SpatialDCT())

    def call(self, inputs):
        pad = (self.kernel_size - 1) // 2
        if self.strides > 1 and pad:
            # PyTorch pads (k-1)/2 on every side; at stride 1 (odd k) that is "same", no pad op needed.
            inputs = ops.pad(inputs, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
        padding = "same" if self.strides == 1 else "valid"
        implementation = self.implementation
        if implementation == "auto":
            implementation = "reshape" if keras.backend.backend() == "jax" else "depthwise"
        if self.share and implementation == "reshape":
            return self._folded_conv(inputs, padding)
        kernel = ops.tile(self.kernel, (1, 1, self.channels, 1)) if self.share else self.kernel
        return ops.depthwise_conv(inputs, kernel, strides=self.strides, padding=padding)

    def _folded_conv(self, inputs, padding):
        """Every channel as its own one-channel image through one conv with the shared ``a*a`` filters."""
        height, width, channels, filters = inputs.shape[1], inputs.shape[2], self.channels, self.a * self.a
        images = ops.reshape(ops.transpose(inputs, (0, 3, 1, 2)), (-1, height, width, 1))
        out = ops.conv(images, self.kernel, strides=self.strides, padding=padding)
        out_h, out_w = out.shape[1], out.shape[2]
        out = ops.transpose(ops.reshape(out, (-1, channels, out_h, out_w, filters)), (0, 2, 3, 1, 4))
        # Channel c * a*a + m is channel c through filter m, the order of the depthwise form.
        return ops.reshape(out, (-1, out_h, out_w, channels * filters))

    def compute_output_shape(self, input_shape):
        return strided_shape(input_shape, self.strides, input_shape[-1] * self.a * self.a)

    def multiply_adds(self, input_shape):
        """Multiply-adds of one example: ``H_out * W_out * C * a*a * k*k`` (sharing saves weights, not MACs)."""
        out = self.compute_output_shape((None, *input_shape[-3:]))
        return out[1] * out[2] * out[3] * self.kernel_size**2

    def get_config(self):
        return {
            **super().get_config(),
            "a": self.a,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "share": self.share,
            "implementation": self.implementation,
        }


@keras.saving.register_keras_serializable(package="sparse_keras")
class GroupedPointwise(layers.Layer):
    """A 1x1 conv with ``groups = C_in`` and ``multiplier`` outputs per input channel, no bias.

    The shortcut D of the official LST-II networks (``nn.Conv2d(C_in, C_out, 1, groups=C_in)``). Output
    channel ``c * multiplier + j`` is ``x_c * w[c, j]``, so it is computed as a broadcast product, which every
    backend fuses; XLA on CPU runs the equivalent grouped conv (a ``DepthwiseConv2D``) 10-100x slower.
    The kernel keeps ``DepthwiseConv2D``'s layout, ``(1, 1, C_in, multiplier)``.
    """

    def __init__(self, multiplier, strides=1, kernel_initializer="he_normal", **kwargs):
        super().__init__(**kwargs)
        self.multiplier = checks.positive_int("multiplier", multiplier)
        self.strides = checks.positive_int("strides", strides)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        self.channels = channels_of(input_shape, self.name)
        self.kernel = self.add_weight(name="kernel", shape=(1, 1, self.channels, self.multiplier),
                                      initializer=self.kernel_initializer)

    def call(self, inputs):
        if self.strides > 1:  # a 1x1 conv at stride s reads every s-th pixel from the first
            inputs = inputs[:, :: self.strides, :: self.strides, :]
        out = ops.expand_dims(inputs, -1) * self.kernel[0, 0]
        return ops.reshape(out, (-1, out.shape[1], out.shape[2], self.channels * self.multiplier))

    def compute_output_shape(self, input_shape):
        return strided_shape(input_shape, self.strides, input_shape[-1] * self.multiplier)

    def get_config(self):
        return {
            **super().get_config(),
            "multiplier": self.multiplier,
            "strides": self.strides,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
        }


def check_spatial_implementation(implementation):
    if implementation not in SPATIAL_IMPLEMENTATIONS:
        raise ValueError(f"implementation must be one of {SPATIAL_IMPLEMENTATIONS}, got {implementation!r}")
    return implementation


def strided_shape(input_shape, strides, channels):
    """Output shape of a symmetric-padded odd-kernel (or 1x1) conv: ``ceil(size / stride)``."""
    batch, height, width = input_shape[0], input_shape[1], input_shape[2]
    return (
        batch,
        None if height is None else -(-height // strides),
        None if width is None else -(-width // strides),
        channels,
    )


def channels_of(input_shape, name):
    if len(input_shape) != 4 or input_shape[-1] is None:
        raise ValueError(f"{name} takes NHWC images with a known channel count; got input_shape={tuple(input_shape)!r}")
    return int(input_shape[-1])

"""Low-rank + sparse factorised layers (LRSD, Guo et al. 2019, eq. 1-4).

A weight ``W`` (``K`` outputs, ``m = C d^2`` inputs) is learned from scratch as ``W = U V + S``: ``V`` maps
the input to ``rank`` channels with the layer's own kernel size, stride and padding, ``U`` is a 1x1 map
from ``rank`` to ``K`` channels, and ``S`` is a full-shape kernel carrying an l1 penalty (eq. 4) so that
training drives most of it towards zero. The forward pass runs the two branches on the same input and
adds them, ``y = BN(U(V x)) + S x``: the factorisation is what saves parameters and multiply-adds, and
the paper adds the BN after ``U`` on small datasets because it "improves the performance".

``sparse_only=True`` drops ``U``/``V`` (the paper's choice for fully connected and 1x1 layers, where a
rank-1 term saves nothing). ``rank`` is an int, a fraction of the output channels (``0.1`` for the
paper's ``K/10``) or the string ``"K/10"``.

``S`` is declared through :meth:`sparsifiable_kernels`, so energy pruning, masks
(:func:`sparse_keras.sparsity.masking.install_masks`) and the analysis find it like any kernel.
"""

import fractions
import numbers
import re

import keras
import numpy as np
from keras import ops

from sparse_keras.inspection import kernels

BN_EPSILON = 1e-5  # PyTorch defaults: the paper trains in PyTorch
BN_MOMENTUM = 0.9


def resolve_rank(rank, outputs):
    """The integer rank of ``U V`` for a layer with ``outputs`` output channels.

    ``rank`` is a positive int, a fraction in ``(0, 1]`` of ``outputs``, or one of them or ``"K/n"`` as a
    string; fractions round down, as ``r = K/10`` does for the paper's integer widths, but never below 1.
    """
    value = rank
    if isinstance(rank, str):  # what a config file (and its command-line override) can hold
        value = _parse_rank(rank)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"rank must be an int, a fraction or 'K/n'; got rank={rank!r}")
    if isinstance(value, numbers.Integral):
        if value < 1:
            raise ValueError(f"rank must be a positive int, got rank={rank!r}")
        return int(value)
    if not 0 < value <= 1:
        raise ValueError(f"A fractional rank must lie in (0, 1] (a share of the outputs); got rank={rank!r}")
    return max(1, int(value * outputs))


def _parse_rank(text):
    match = re.fullmatch(r"\s*K\s*/\s*(\d+)\s*", text)
    if match and int(match.group(1)) >= 1:
        return fractions.Fraction(1, int(match.group(1)))
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    raise ValueError(f"rank must be an int, a fraction or 'K/n'; got rank={text!r}")


class _LRSDBase(keras.layers.Layer, kernels.Sparsifiable):
    """What LRSD conv and dense layers share: the branches, the l1 on ``S``, the config.

    Subclasses give the kernel shapes (:meth:`_shapes`), the linear map (:meth:`_apply`) and the layout
    name of ``S`` for the group math.
    """

    layout = None

    def __init__(
        self,
        outputs,
        rank=1,
        sparse_only=False,
        batch_norm=False,
        use_bias=False,
        activation=None,
        sparse_l1=2e-6,
        sparse_regularizer=None,
        kernel_initializer="he_normal",
        bias_initializer="zeros",
        batch_norm_gamma=1.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(outputs, bool) or not isinstance(outputs, numbers.Integral) or outputs < 1:
            name = "units" if self.layout == "dense" else "filters"
            raise ValueError(f"{name} must be a positive int, got {name}={outputs!r}")
        self.outputs = int(outputs)
        self.rank_spec = rank
        self.rank = None if sparse_only else resolve_rank(rank, self.outputs)
        self.sparse_only = bool(sparse_only)
        self.batch_norm = bool(batch_norm) and not self.sparse_only
        self.use_bias = bool(use_bias)
        self.activation = keras.activations.get(activation)
        if isinstance(sparse_l1, bool) or not isinstance(sparse_l1, numbers.Real) or not 0 <= sparse_l1 < np.inf:
            raise ValueError(f"sparse_l1 must be a finite float >= 0, got sparse_l1={sparse_l1!r}")
        sparse_l1 = self.sparse_l1 = float(sparse_l1)
        # An explicit regularizer (e.g. one attached later by `regularize`, saved by get_config) wins.
        if sparse_regularizer is None and sparse_l1 > 0:
            sparse_regularizer = keras.regularizers.L1(sparse_l1)
        self.sparse_regularizer = keras.regularizers.get(sparse_regularizer)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.batch_norm_gamma = float(batch_norm_gamma)
        self.low_rank_bn = None
        if self.batch_norm:
            self.low_rank_bn = keras.layers.BatchNormalization(
                epsilon=BN_EPSILON,
                momentum=BN_MOMENTUM,
                gamma_initializer=keras.initializers.Constant(self.batch_norm_gamma),
                name="low_rank_bn",
            )

    # -- subclass hooks ----------------------------------------------------------------------------
    def _shapes(self, inputs):
        """``(v_shape, u_shape, s_shape)`` for ``inputs`` input channels."""
        raise NotImplementedError

    def _apply(self, x, kernel, low_rank_u=False):
        raise NotImplementedError

    # -- Keras API ---------------------------------------------------------------------------------
    def build(self, input_shape):
        inputs = input_shape[-1]
        if inputs is None:
            raise ValueError(f"Layer {self.name!r} needs a known last input dimension, got {input_shape}")
        v_shape, u_shape, s_shape = self._shapes(int(inputs))
        if not self.sparse_only:
            limit = min(self.outputs, int(np.prod(v_shape[:-1])))
            if self.rank > limit:
                raise ValueError(
                    f"Layer {self.name!r}: rank={self.rank} exceeds min(outputs, inputs * kernel area) = {limit}"
                )
            self.v_kernel = self.add_weight(name="v_kernel", shape=v_shape, initializer=self.kernel_initializer)
            self.u_kernel = self.add_weight(name="u_kernel", shape=u_shape, initializer=self.kernel_initializer)
            if self.low_rank_bn is not None:
                self.low_rank_bn.build(self._low_rank_shape(input_shape))
        self.s_kernel = self.add_weight(
            name="s_kernel", shape=s_shape, initializer=self.kernel_initializer, regularizer=self.sparse_regularizer
        )
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(name="bias", shape=(self.outputs,), initializer=self.bias_initializer)
        self.built = True

    def _low_rank_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.outputs,)

    def call(self, inputs, training=None):
        y = self._apply(inputs, self.s_kernel)
        if not self.sparse_only:
            low = self._apply(self._apply(inputs, self.v_kernel), self.u_kernel, low_rank_u=True)
            if self.low_rank_bn is not None:
                low = self.low_rank_bn(low, training=training)
            y = y + low
        if self.bias is not None:
            y = y + self.bias
        return self.activation(y) if self.activation is not None else y

    def sparsifiable_kernels(self):
        if not self.built:
            return []
        return [kernels.KernelSlot(self, "s_kernel", "sparse_regularizer", self.layout)]

    # -- the effective weight ----------------------------------------------------------------------
    @property
    def low_rank_kernel(self):
        """``L = U V`` in ``S``'s layout (zeros when ``sparse_only``); BN excluded."""
        if self.sparse_only:
            return ops.zeros(tuple(self.s_kernel.shape), dtype=self.s_kernel.dtype)
        return self._product(self.v_kernel, self.u_kernel)

    @property
    def kernel(self):
        """``W = U V + S`` (eq. 1 and 3), the kernel of the equivalent plain layer when there is no BN."""
        return self.low_rank_kernel + self.s_kernel

    def folded_kernel_and_bias(self):
        """``(W, b)`` of one plain layer computing this layer at inference (BN with moving statistics).

        BN after ``U`` is per output channel affine, ``a * z + c``, so it folds into ``U``:
        ``W = (U diag(a)) V + S`` and ``b = c (+ bias)``.
        """
        bias = ops.zeros((self.outputs,)) if self.bias is None else ops.convert_to_tensor(self.bias)
        if self.low_rank_bn is None:
            return self.kernel, bias
        bn = self.low_rank_bn
        scale = bn.gamma / ops.sqrt(bn.moving_variance + bn.epsilon)
        shift = bn.beta - bn.moving_mean * scale
        return self._product(self.v_kernel, self.u_kernel * scale) + self.s_kernel, bias + shift

    def _product(self, v, u):
        v2 = ops.reshape(v, (-1, self.rank))
        u2 = ops.reshape(u, (self.rank, self.outputs))
        return ops.reshape(ops.matmul(v2, u2), self.s_kernel.shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "rank": self.rank_spec,
                "sparse_only": self.sparse_only,
                "batch_norm": self.batch_norm,
                "use_bias": self.use_bias,
                "activation": keras.activations.serialize(self.activation) if self.activation else None,
                "sparse_l1": self.sparse_l1,
                "sparse_regularizer": keras.regularizers.serialize(self.sparse_regularizer),
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "batch_norm_gamma": self.batch_norm_gamma,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="sparse_keras")
class LRSDConv2D(_LRSDBase):
    """A 2-D convolution learned as ``W = U V + S`` (Guo et al. 2019, Fig. 2), channels last.

    Args:
      filters: output channels ``K``.
      kernel_size: int or pair ``(kh, kw)``: ``V`` and ``S`` use it, ``U`` is 1x1.
      rank: ``r`` of ``U V``: an int, a fraction of ``filters`` or ``"K/n"`` (the paper's default is 1).
      strides, padding: of ``V`` and ``S`` (``"same"`` or ``"valid"``), as in the layer being replaced.
      batch_norm: a BatchNormalization after ``U`` (the paper's CIFAR module; default on).
      sparse_only: only ``S`` (the paper's choice for 1x1 convs).
      use_bias: a bias on the sum (off: a BN follows in the paper's networks).
      activation: applied to the output.
      sparse_l1: ``lambda`` of eq. 4, the l1 strength on ``S`` (2e-6 on CIFAR, 1e-6 on ImageNet).
      sparse_regularizer: any regularizer for ``S`` instead of ``L1(sparse_l1)``.
      kernel_initializer: for ``V``, ``U`` and ``S``.
      bias_initializer: for the bias (with ``use_bias``).
      batch_norm_gamma: initial BN scale (the slimming code base uses 0.5).
    """

    layout = "conv"

    def __init__(
        self,
        filters,
        kernel_size,
        rank=1,
        strides=1,
        padding="same",
        batch_norm=True,
        sparse_only=False,
        use_bias=False,
        activation=None,
        sparse_l1=2e-6,
        sparse_regularizer=None,
        kernel_initializer="he_normal",
        bias_initializer="zeros",
        batch_norm_gamma=1.0,
        **kwargs,
    ):
        # The documented arguments are explicit so that help() and IDEs show them; **kwargs is only what
        # keras.layers.Layer takes (name, dtype, trainable).
        super().__init__(
            filters,
            rank=rank,
            sparse_only=sparse_only,
            batch_norm=batch_norm,
            use_bias=use_bias,
            activation=activation,
            sparse_l1=sparse_l1,
            sparse_regularizer=sparse_regularizer,
            kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer,
            batch_norm_gamma=batch_norm_gamma,
            **kwargs,
        )
        self.filters = self.outputs
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.strides = _pair(strides, "strides")
        padding = str(padding).lower()
        if padding not in ("same", "valid"):
            raise ValueError(f"padding must be 'same' or 'valid', got padding={padding!r}")
        self.padding = padding

    def _shapes(self, inputs):
        kh, kw = self.kernel_size
        rank = self.rank or 0
        return (kh, kw, inputs, rank), (1, 1, rank, self.filters), (kh, kw, inputs, self.filters)

    def _apply(self, x, kernel, low_rank_u=False):
        if low_rank_u:
            return ops.conv(x, kernel, strides=1, padding="valid")
        return ops.conv(x, kernel, strides=self.strides, padding=self.padding)

    def compute_output_shape(self, input_shape):
        spatial = []
        for size, k, stride in zip(input_shape[1:3], self.kernel_size, self.strides):
            if size is None:
                spatial.append(None)
            elif self.padding == "same":
                spatial.append(-(-size // stride))
            else:
                spatial.append((size - k) // stride + 1)
        return (input_shape[0], *spatial, self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            {"filters": self.filters, "kernel_size": self.kernel_size, "strides": self.strides, "padding": self.padding}
        )
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable(package="sparse_keras")
class LRSDDense(_LRSDBase):
    """A fully connected layer learned as ``W = U V + S``; the CIFAR networks use ``sparse_only=True``.

    Args are those of :class:`LRSDConv2D` with ``units`` for ``filters``; ``use_bias`` defaults to True
    and ``batch_norm`` (after ``U``) to False, as for a plain Dense classifier.
    """

    layout = "dense"

    def __init__(
        self,
        units,
        rank=1,
        batch_norm=False,
        sparse_only=False,
        use_bias=True,
        activation=None,
        sparse_l1=2e-6,
        sparse_regularizer=None,
        kernel_initializer="he_normal",
        bias_initializer="zeros",
        batch_norm_gamma=1.0,
        **kwargs,
    ):
        # The documented arguments are explicit so that help() and IDEs show them; **kwargs is only what
        # keras.layers.Layer takes (name, dtype, trainable).
        super().__init__(
            units,
            rank=rank,
            sparse_only=sparse_only,
            batch_norm=batch_norm,
            use_bias=use_bias,
            activation=activation,
            sparse_l1=sparse_l1,
            sparse_regularizer=sparse_regularizer,
            kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer,
            batch_norm_gamma=batch_norm_gamma,
            **kwargs,
        )
        self.units = self.outputs

    def _shapes(self, inputs):
        rank = self.rank or 0
        return (inputs, rank), (rank, self.units), (inputs, self.units)

    def _apply(self, x, kernel, low_rank_u=False):
        return ops.matmul(x, kernel)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        config = super().get_config()
        config["units"] = self.units
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def is_lrsd_layer(layer):
    """Whether ``layer`` is one of the LRSD layers (their ``S`` is what energy pruning prunes)."""
    return isinstance(layer, _LRSDBase)


def _pair(value, name):
    items = (value, value) if isinstance(value, numbers.Integral) and not isinstance(value, bool) else value
    try:
        items = tuple(items)
    except TypeError:
        raise ValueError(f"{name} must be a positive int or a pair of them, got {name}={value!r}") from None
    if len(items) != 2 or any(isinstance(i, bool) or not isinstance(i, numbers.Integral) or i < 1 for i in items):
        raise ValueError(f"{name} must be a positive int or a pair of them, got {name}={value!r}")
    return tuple(int(i) for i in items)

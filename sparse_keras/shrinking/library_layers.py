"""Shrinking the library's own layers: LRSD (``W = U V + S``, Guo et al. 2019), CSC (unrolled FISTA, Dai et al. 2022) and
the LST blocks (Li et al. 2020).

LRSD layers are linear at inference (the BN after ``U`` folds into ``U``), so they shrink like any kernel
layer once their effective kernel is known; the question is only which form the kept part takes. A CSC
layer is not linear, but a zero atom gives a code channel that is exactly zero, and an input channel that no
atom reads never reaches the code; both facts let it shrink exactly. An LST block keeps its outputs (its
residual sum fixes them) and loses the internal channels that only carry a constant into a 1x1 conv, whose
contribution then moves into the moving mean of the BN after that conv.
"""

import keras
import numpy as np

from sparse_keras.layers import csc as csc_layers
from sparse_keras.layers import lrsd as lrsd_layers
from sparse_keras.layers import lst as lst_layers
from sparse_keras.shrinking import crop
from sparse_keras.shrinking import kernel_layers
from sparse_keras.shrinking import registry


def _numpy(value):
    return np.asarray(keras.ops.convert_to_numpy(value), "float32")


# ---------------------------------------------------------------------------------------------- LRSD
class LRSDFactors:
    """One LRSD layer at inference, thresholded as :func:`~sparse_keras.shrinking.shrink` asked.

    ``kernel``/``bias`` are those of the equivalent plain layer (``W = U diag(a) V + S``, ``b = c + bias``
    from :meth:`~sparse_keras.layers.LRSDConv2D.folded_kernel_and_bias`, ``a z + c`` the BN after ``U``),
    with the shrink-time ``S`` (its below-``tau`` groups zeroed) in place of the trained one. ``v``, ``u``
    (``U diag(a)``) and ``s`` are the factors, each in its layer's layout; ``v`` and ``u`` are ``None`` for
    ``sparse_only`` layers.
    """

    def __init__(self, layer, s_kernel):
        raw_s = _numpy(layer.s_kernel)
        folded, bias = (_numpy(t) for t in layer.folded_kernel_and_bias())
        # Swap the trained S for the thresholded one only where they differ, so tau=0 keeps W bit for bit.
        self.kernel = np.where(s_kernel == raw_s, folded, folded - raw_s + s_kernel)
        self.bias, self.s = bias, s_kernel
        self.v = self.u = None
        if not layer.sparse_only:
            scale = np.ones(layer.outputs, "float32")
            if layer.low_rank_bn is not None:
                bn = layer.low_rank_bn  # the BN fold of folded_kernel_and_bias, for U alone
                scale = _numpy(bn.gamma) / np.sqrt(_numpy(bn.moving_variance) + bn.epsilon)
            self.v = _numpy(layer.v_kernel).reshape(-1, layer.rank)
            self.u = _numpy(layer.u_kernel).reshape(layer.rank, layer.outputs) * scale


class LRSDHandler(kernel_layers.KernelHandler):
    """LRSD layers shrink like the plain layer of their folded kernel ``W = U diag(a) V + S`` (exact at
    inference: the BN after ``U`` uses its moving statistics).

    * Output channel ``j`` goes when ``W[..., j]`` is zero: its ``U`` column is zero (or every ``V`` is) and
      its ``S`` column is zero once ``S``'s groups at or below ``tau`` are zeroed. ``tau`` thresholds ``S``,
      the LRSD layer's one sparsifiable kernel, as :func:`sparse_keras.prune.threshold` does; ``U``/``V`` are
      dense factors and only exact zeros count there. The channel then emits ``act(b_j)`` (a constant) and
      leaves with the next layers' inputs, as for a Conv2D.
    * Dropped (constant) input channels fold into the bias like a Conv2D's.
    * The kept part is rebuilt in the form with fewer multiply-adds, decided by counting (both forms run
      at the same output resolution, so counts per output pixel compare exactly):

      - ``"merged"``: one ``Conv2D``/``Dense`` holding ``W`` (cropped to its learned size like any conv);
        ``sparse_only`` layers, and every layer whose ``S`` kept a non-zero entry, end here: a dense
        runtime computes ``S`` at full cost, so ``U V + S`` always costs more than ``W`` alone.
      - ``"low_rank"``: where ``S`` is zero on every kept (input, output) pair, ``V`` (its rank components
        whose ``V`` column or ``U`` row is zero on the kept channels removed) as a bias-free
        ``Conv2D``/``Dense`` named ``<name>_v``, then ``U diag(a)`` as a 1x1 ``Conv2D``/``Dense`` named
        ``<name>`` with the folded bias and the activation: ``r (k^2 C + K)`` instead of ``k^2 C K``
        multiply-adds per pixel.

    The rebuilt layers are plain Keras layers: the shrunk model needs no sparse_keras class to load.
    """

    def _connections(self, layer, plan):
        key = ("connections", id(layer))
        if key not in plan.memo:
            factors = self.factors(layer, plan)
            if isinstance(layer, lrsd_layers.LRSDDense):
                kernel, bias = factors.kernel.astype("float64"), factors.bias.astype("float64")
                plan.memo[key] = kernel_layers.Connections(kernel != 0, kernel, bias, True)
            else:
                found = kernel_layers._conv_connections(factors.kernel, factors.bias, layer.padding)
                plan.memo[key] = kernel_layers.Connections(*found)
        return plan.memo[key]

    @staticmethod
    def factors(layer, plan):
        key = ("lrsd_factors", id(layer))
        if key not in plan.memo:
            plan.memo[key] = LRSDFactors(layer, plan.effective_weights(layer)["s_kernel"])
        return plan.memo[key]

    def rebuild_kept(self, node, build, x, order, keep):
        layer = node.operation
        factors = self.factors(layer, build.plan)
        bias = self.folded_bias(node, build.plan, order, keep).astype("float32")
        form, components = choose_lrsd_form(layer, factors, order, keep)
        build.choices[layer.name] = (form, {})
        if form == "low_rank":
            return self._low_rank(layer, x, factors, order, keep, components, bias), keep
        kernel = factors.kernel[..., order, :][..., keep]
        return self._merged(layer, x, kernel, bias), keep

    @staticmethod
    def _merged(layer, x, kernel, bias):
        template = plain_layer(layer, kernel.shape[-1])
        if isinstance(layer, lrsd_layers.LRSDDense):
            return _dense(template, x, kernel, bias)
        box = crop.union_box(crop.support_boxes(kernel), kernel.shape[:2])
        return kernel_layers.cropped_conv(template, x, kernel, bias, box, layer.name)

    @staticmethod
    def _low_rank(layer, x, factors, order, keep, components, bias):
        v_shape = factors.s.shape[:-2] + (len(order), len(components))
        rows = np.arange(factors.v.shape[0]).reshape(factors.s.shape[:-1])[..., order].ravel()
        v = factors.v[np.ix_(rows, components)].reshape(v_shape)
        u = factors.u[np.ix_(components, keep)]
        v_layer = plain_layer(layer, len(components), name=f"{layer.name}_v", activation=None)
        if isinstance(layer, lrsd_layers.LRSDDense):
            return _dense(plain_layer(layer, len(keep)), _dense(v_layer, x, v, None), u, bias)
        box = crop.union_box(crop.support_boxes(v), v.shape[:2])
        y = kernel_layers.cropped_conv(v_layer, x, v, np.zeros(0), box, v_layer.name)
        u_layer = plain_layer(layer, len(keep), kernel_size=(1, 1), strides=(1, 1), padding="valid")
        return kernel_layers.cropped_conv(u_layer, y, u[None, None], bias, crop.Box(0, 0, 1, 1), layer.name)


def choose_lrsd_form(layer, factors, order, keep):
    """``("merged", None)`` or ``("low_rank", rank components)``, whichever has fewer multiply-adds per
    output pixel on the kept channels (see :class:`LRSDHandler`)."""
    area = int(np.prod(factors.s.shape[:-2]))
    merged = area * len(order) * len(keep)
    if factors.v is None:
        return "merged", None
    if np.any(factors.s[..., order, :][..., keep]):
        return "merged", None
    v = factors.v.reshape(*factors.s.shape[:-1], -1)[..., order, :]
    live = v.reshape(-1, v.shape[-1]).any(axis=0) & factors.u[:, keep].any(axis=1)
    components = np.flatnonzero(live)
    low_rank = len(components) * (area * len(order) + len(keep))
    return ("low_rank", components) if 0 < low_rank < merged else ("merged", None)


def plain_layer(layer, width, **overrides):
    """An unbuilt ``Conv2D``/``Dense`` like :func:`sparse_keras.convert.from_lrsd` builds for an LRSD layer,
    with ``width`` outputs; a template, which :func:`~sparse_keras.shrinking.kernel_layers.cropped_conv` and
    :func:`_dense` configure for deployment and give a bias only where the folded one is non-zero."""
    common = dict(use_bias=False, activation=layer.activation, name=layer.name)
    if isinstance(layer, lrsd_layers.LRSDDense):
        return keras.layers.Dense(width, **{**common, **overrides})
    config = dict(kernel_size=layer.kernel_size, strides=layer.strides, padding=layer.padding, **common)
    return keras.layers.Conv2D(width, **{**config, **overrides})


def _dense(template, x, kernel, bias):
    use_bias = bias is not None and bool(np.any(bias))
    new = keras.layers.Dense.from_config(kernel_layers.deployment_config(template, use_bias=use_bias))
    y = new(x)
    new.set_weights([kernel, bias] if use_bias else [kernel])
    return y


registry.register(lrsd_layers.LRSDConv2D)(LRSDHandler)
registry.register(lrsd_layers.LRSDDense)(LRSDHandler)


# ----------------------------------------------------------------------------------------------- CSC
@registry.register(csc_layers.CSCConv2D)
class CSCHandler(registry.Handler):
    """A CSC layer loses its zero atoms and the input channels no atom reads; the rebuilt layer is a
    :class:`~sparse_keras.layers.CSCConv2D` with the original ``step_size`` frozen in it.

    Why this is exact (FISTA from ``z0 = 0``, :func:`~sparse_keras.layers.csc.fista`):

    * Atom ``j`` zero: ``A*(r)_j = 0`` for every residual ``r``, so each iterate's code channel is
      ``T(0 + 0) = max(-lam t, 0) = 0`` (or the soft threshold of 0, also 0, without the non-negativity),
      and a zero code channel adds nothing to ``A(z)``. Channel ``j`` is a constant 0 and the other codes
      never see it. Only exact zeros count: ``tau`` thresholds the kernels
      :func:`sparse_keras.prune.threshold` thresholds, and a dictionary is not one of them.
    * Input channel ``c`` that no kept atom reads: ``A*`` ignores it and ``A(z)`` is zero there, so the
      residual ``x_c - A(z)_c = x_c`` is read by ``A*`` with zero weights again: ``c`` never reaches ``z``.
      It may go when constant (the plan only drops constants).
    * Input channel ``c`` that an atom reads must stay even when it is the constant 0 (unlike a conv's
      input): from the second iteration on the residual ``0 - A(z)_c`` feeds back into every code. With
      ``n_iter=1`` the layer is a thresholded conv and only a non-zero constant (zero border) must stay.

    The step size ``t = 0.9 / L`` is copied, not recomputed, and ``refresh_step_size`` is off in the
    rebuilt layer: removing zero atoms and unread channels leaves ``A^T A`` the same operator on the kept
    code channels (same ``L`` mathematically), but a fresh power iteration would estimate ``L`` anew and
    change the outputs slightly; the copy keeps them identical. ``power_vector`` keeps its kept channels.
    Removing atoms never divides by a zero atom's norm: they are dropped, and a zero atom kept back by
    ``channel_multiple`` stays zero under ``normalize_atoms`` (``UnitNorm`` divides by ``eps + ||w||``).
    """

    order = "any"
    is_kernel = True

    @staticmethod
    def _kernel(layer, plan):
        key = ("csc_kernel", id(layer))
        if key not in plan.memo:
            plan.memo[key] = _numpy(layer.kernel)
        return plan.memo[key]

    def constants(self, node, in_consts, plan):
        kernel = self._kernel(node.operation, plan)
        live = kernel.reshape(-1, kernel.shape[-1]).any(axis=0)
        return [np.where(live, np.nan, 0.0)]

    def required(self, node, position, plan):
        layer = node.operation
        kernel = self._kernel(layer, plan)
        read = kernel.reshape(-1, kernel.shape[2], kernel.shape[3]).any(axis=(0, 2))
        v = plan.const(node.input_tensors[position])
        constant = ~np.isnan(v)
        return constant & read & ((v != 0) | (layer.n_iter > 1))

    def rebuild(self, node, build):
        layer = node.operation
        keep = build.plan.kept(node.output_tensors[0])
        if not len(keep):
            return [(None, keep)]
        found = build.input(node.input_tensors[0])
        if found is None:
            raise ValueError(f"CSC layer {layer.name!r} must emit {len(keep)} codes but none of its input channels is kept")
        x, order = found
        config = {**layer.get_config(), "filters": len(keep), "refresh_step_size": False}
        config.update(kernel_initializer="zeros", kernel_regularizer=None, lam_trainable=False)
        new = csc_layers.CSCConv2D.from_config(config)
        y = new(x)
        new.kernel.assign(self._kernel(layer, build.plan)[:, :, order][..., keep])
        new.lam.assign(_numpy(layer.lam))
        new.power_vector.assign(_numpy(layer.power_vector)[..., keep])
        new.step_size.assign(_numpy(layer.step_size))
        return [(y, keep)]


# ----------------------------------------------------------------------------------------------- LST
def _pointwise(conv):
    """A 1x1 conv's kernel as an ``(in, out)`` matrix."""
    return _numpy(conv.kernel)[0, 0]


def _pixel(values, *layers):
    """``values`` (one per channel) through channel-wise ``layers`` at inference, as float64 numpy."""
    y = np.asarray(values, "float32").reshape(1, 1, 1, -1)
    for layer in layers:
        y = layer(y, training=False) if isinstance(layer, keras.layers.BatchNormalization) else layer(y)
    return np.asarray(keras.ops.convert_to_numpy(y), "float64").ravel()


def _bn_weights(bn, keep=None, added=0.0):
    """``bn``'s weights for the channels ``keep`` (all if ``None``) when ``added`` is added to its input:
    ``BN(z + d) = BN'(z)`` with moving mean ``mean - d`` (inference uses the moving statistics)."""
    gamma, beta, mean, variance = bn.get_weights()
    mean = (mean - added).astype(mean.dtype) if keep is None else (mean[keep] - added).astype(mean.dtype)
    if keep is not None:
        gamma, beta, variance = gamma[keep], beta[keep], variance[keep]
    return [gamma, beta, mean, variance]


class LSTBlockHandler(registry.Handler):
    """LST blocks keep every output channel (the residual sum and output ST mix each with the shortcut) and
    lose internal channels whose only effect is a constant entering a 1x1 conv followed by a BN:

    * :class:`~sparse_keras.layers.LSTBlockII`: a T_r output channel that reads no kept input (its 1x1
      column is zero there) is a constant through BN and ReLU; T_c is 1x1, so the constant's contribution
      moves into T_c's BN moving mean and the channel goes (``resize_width``).
    * :class:`~sparse_keras.layers.LSTBlockI` and :class:`~sparse_keras.layers.InvertedLSTBlock` (``E > 1``):
      a T_c output channel that reads no kept input goes when its soft threshold is exactly 0 (its BN maps
      the constant into ``[-tau, tau]``): T_s then emits zero maps for its ``a * a`` channels, whose
      BN + ReLU constants T_r (1x1) carries into its BN moving mean (``core_width``).
    * Constant input channels go when the block reads its input through 1x1 convs followed by BNs only:
      T_r / T_c and a dense 1x1 shortcut, folded the same way. Only for stride > 1 blocks, whose shortcut
      stays a conv whatever their input width (at stride 1 an input width equal to ``filters`` would turn
      the rebuilt block's shortcut into the identity), and never through an identity or grouped shortcut.

    Kept whole, because no shrinking of them is exact: T_c outputs of LST-II and T_s outputs (a constant
    non-zero map meets T_s's zero padding, so it does not stay constant; LST-II's T_s outputs are the
    block's outputs), T_r outputs of LST-I (they are the block's outputs), the ``E = 1`` inverted block
    (T_s reads the input directly), and input channels of stride-1 blocks and of identity or grouped
    shortcuts (the residual sum needs each of them).
    """

    order = "strict"

    def constants(self, node, in_consts, plan):
        return [np.full(plan.channels(node.output_tensors[0]), np.nan)]

    @staticmethod
    def first_transform(block):
        return block.resize_conv if isinstance(block, lst_layers.LSTBlockII) else block.channel_conv

    def folds_inputs(self, block):
        """Whether constant input channels fold into BN means (see the class docstring)."""
        if block.strides == 1 or self.first_transform(block) is None:
            return False
        if not getattr(block, "residual", True):
            return True
        return isinstance(block.shortcut_conv, keras.layers.Conv2D)

    def required(self, node, position, plan):
        constant = ~np.isnan(plan.const(node.input_tensors[position]))
        return constant & (not self.folds_inputs(node.operation))

    def rebuild(self, node, build):
        block = node.operation
        found = build.input(node.input_tensors[0])
        if found is None:
            raise ValueError(f"LST block {block.name!r} must emit its outputs but none of its input channels is kept")
        x, order = found
        width = build.plan.channels(node.input_tensors[0])
        dropped = np.setdiff1d(np.arange(width), order)
        values = build.plan.const(node.input_tensors[0])[dropped]
        if np.isnan(values).any():
            raise AssertionError(f"{block.name}: a varying input channel was dropped")
        rebuild = _rebuild_lst2 if isinstance(block, lst_layers.LSTBlockII) else _rebuild_lst1
        return [(rebuild(block, x, order, dropped, values), np.arange(block.filters))]


def _live(kernel, order):
    """Output channels of a 1x1 kernel that read a kept input; at least one, so the block stays buildable."""
    live = kernel[order].any(axis=0)
    if not live.any():
        live[0] = True
    return live


def _rebuild_lst2(block, x, order, dropped, values):
    resize, channel = _pointwise(block.resize_conv), _pointwise(block.channel_conv)
    offset = values @ resize[dropped]  # what the dropped constant inputs add to each T_r output
    live = _live(resize, order)
    constants = _pixel(offset, block.resize_bn, block.resize_relu)[~live]
    width = int(live.sum())
    config = {**block.get_config(), "resize_width": width if width < len(live) else None}
    new = lst_layers.LSTBlockII.from_config(config)
    y = new(x)
    new.resize_conv.kernel.assign(resize[np.ix_(order, np.flatnonzero(live))][None, None])
    new.resize_bn.set_weights(_bn_weights(block.resize_bn, live, offset[live]))
    new.channel_conv.kernel.assign(channel[live][None, None])
    new.channel_bn.set_weights(_bn_weights(block.channel_bn, None, constants @ channel[~live]))
    new.spatial.set_weights(block.spatial.get_weights())
    new.spatial_bn.set_weights(block.spatial_bn.get_weights())
    _copy_shortcut(block, new, order, dropped, values)
    return y


def _rebuild_lst1(block, x, order, dropped, values):
    config = dict(block.get_config())
    if block.channel_conv is None:  # the E = 1 inverted block: nothing to shrink, every input kept
        new = type(block).from_config(config)
        y = new(x)
        new.set_weights(block.get_weights())
        return y
    channel, resize = _pointwise(block.channel_conv), _pointwise(block.resize_conv)
    offset = values @ channel[dropped]
    thresholded = _pixel(offset, block.channel_bn, block.channel_st)
    keep = _live(channel, order) | (thresholded != 0)
    a2 = block.spatial.a * block.spatial.a
    wide = np.repeat(keep, a2)  # T_s output c * a*a + m reads core channel c alone
    zero_maps = _pixel(np.zeros(len(wide)), block.spatial_bn, block.spatial_relu)[~wide]
    config["core_width"] = int(keep.sum())  # explicit: an inverted block derives it from its input width
    new = type(block).from_config(config)
    y = new(x)
    new.channel_conv.kernel.assign(channel[np.ix_(order, np.flatnonzero(keep))][None, None])
    new.channel_bn.set_weights(_bn_weights(block.channel_bn, keep, offset[keep]))
    spatial = block.spatial.get_weights()[0]
    new.spatial.set_weights([spatial if block.spatial.share else spatial[:, :, keep]])
    new.spatial_bn.set_weights(_bn_weights(block.spatial_bn, wide))
    new.resize_conv.kernel.assign(resize[wide][None, None])
    new.resize_bn.set_weights(_bn_weights(block.resize_bn, None, zero_maps @ resize[~wide]))
    _copy_shortcut(block, new, order, dropped, values)
    return y


def _copy_shortcut(block, new, order, dropped, values):
    if block.shortcut_conv is None:
        return
    if not isinstance(block.shortcut_conv, keras.layers.Conv2D):  # grouped: every input was kept
        new.shortcut_conv.set_weights(block.shortcut_conv.get_weights())
        new.shortcut_bn.set_weights(block.shortcut_bn.get_weights())
        return
    kernel = _pointwise(block.shortcut_conv)
    new.shortcut_conv.kernel.assign(kernel[order][None, None])
    new.shortcut_bn.set_weights(_bn_weights(block.shortcut_bn, None, values @ kernel[dropped]))


for _block in (lst_layers.LSTBlockII, lst_layers.LSTBlockI, lst_layers.InvertedLSTBlock):
    registry.register(_block)(LSTBlockHandler)

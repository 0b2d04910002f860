"""Shrinking the layers that own kernels: Conv2D, DepthwiseConv2D, SeparableConv2D and Dense.

A kernel layer creates its output channels, so it ties none of them to its inputs (except depthwise convs,
whose output channel ``c*m + k`` reads input channel ``c`` only). An output channel is constant when every
weight reading a varying input is zero; its value is the bias plus the folded constant inputs, through the
activation. Dropped constant inputs are folded into the bias, which is exact where no zero padding meets
them (Dense, 1x1 and 'valid' convs); elsewhere a non-zero constant input stays (see :meth:`required`).

The new layers keep the original names and configs with the new widths and kernel sizes, minus
regularizers and constraints (the shrunk model is for deployment; its kernels no longer have the shapes
the training-time penalties were written for) and with zero initializers (the weights are set right after
building; random initializers would cost a compilation per shape on JAX for nothing).
"""

import dataclasses

import keras
import numpy as np

from sparse_keras.shrinking import crop
from sparse_keras.shrinking import registry

# Activations applied value by value: they map a constant channel to a constant, whatever the others do.
ELEMENTWISE = frozenset(
    "linear relu relu6 leaky_relu elu selu celu gelu silu swish mish sigmoid hard_sigmoid hard_silu hard_swish "
    "tanh softplus softsign exponential".split()
)
_TRAINING_ONLY = ("regularizer", "constraint")
_ACTIVATION_ROW = 1024


@dataclasses.dataclass(frozen=True)
class Connections:
    """How a kernel layer's inputs reach its outputs, computed from the thresholded weights."""

    reaches: np.ndarray  # (in, out) bool: input i reaches output j through a non-zero weight
    coef: np.ndarray  # (in, out) float64: change of output j per unit of a constant input i
    bias: np.ndarray  # (out,) float64
    foldable: bool  # a constant input adds coef * value at every position (no zero padding meets it)


def activate(activation, values):
    """``activation(values)`` as float64 numpy, or ``None`` if it is not applied value by value."""
    name = getattr(activation, "__name__", None)
    if name not in ELEMENTWISE or keras.activations.get(name) is not activation:
        return None
    values = np.asarray(values, "float32")
    # Padded to rows of _ACTIVATION_ROW values so that every layer width reuses one compiled shape (JAX).
    rows = -(-max(len(values), 1) // _ACTIVATION_ROW)
    padded = np.zeros(rows * _ACTIVATION_ROW, "float32")
    padded[: len(values)] = values
    out = activation(keras.ops.convert_to_tensor(padded.reshape(rows, _ACTIVATION_ROW)))
    return np.asarray(keras.ops.convert_to_numpy(out), "float64").ravel()[: len(values)]


def deployment_config(layer, **overrides):
    """``layer``'s config with ``overrides``, zero initializers and no regularizers or constraints."""
    config = layer.get_config()
    for key in list(config):
        if key.endswith(_TRAINING_ONLY):
            config[key] = None
        elif key.endswith("initializer"):
            config[key] = "zeros"
    config.update(overrides)
    return config


class KernelHandler(registry.Handler):
    order = "any"
    is_kernel = True

    def supports(self, layer):
        return (
            getattr(layer, "data_format", "channels_last") == "channels_last"
            and getattr(layer, "groups", 1) == 1
            and not getattr(layer, "lora_enabled", False)
            and getattr(layer, "quantization_mode", None) is None
        )

    def connections(self, layer, weights):
        raise NotImplementedError

    def _connections(self, layer, plan):
        key = ("connections", id(layer))
        if key not in plan.memo:
            plan.memo[key] = self.connections(layer, plan.effective_weights(layer))
        return plan.memo[key]

    def constants(self, node, in_consts, plan):
        layer = node.operation
        c = self._connections(layer, plan)
        v = in_consts[0]
        blocked = np.isnan(v) | ((v != 0) & (not c.foldable) & plan.exact)
        varies = (c.reaches & blocked[:, None]).any(axis=0)
        out = activate(layer.activation, c.bias + np.where(np.isnan(v), 0.0, v) @ c.coef)
        if out is None:  # softmax & co. mix channels: every output varies with the others
            return [np.full(len(c.bias), np.nan)]
        out[varies] = np.nan
        return [out]

    def required(self, node, position, plan):
        c = self._connections(node.operation, plan)
        v = plan.const(node.input_tensors[position])
        # Approximate mode folds the constant as if no zero border met it (exact away from the border).
        return ~np.isnan(v) & (v != 0) & c.reaches.any(axis=1) & (not c.foldable) & plan.exact

    def folded_bias(self, node, plan, order, keep):
        """Bias of the kept outputs plus what the dropped (constant) inputs contribute to them."""
        c = self._connections(node.operation, plan)
        dropped = np.setdiff1d(np.arange(c.coef.shape[0]), order)
        values = plan.const(node.input_tensors[0])[dropped]
        if np.isnan(values).any():
            raise AssertionError(f"{node.operation.name}: a varying input channel was dropped")
        return c.bias[keep] + values @ c.coef[np.ix_(dropped, keep)]

    def rebuild(self, node, build):
        keep = build.plan.kept(node.output_tensors[0])
        if not len(keep):
            return [(None, keep)]
        found = build.input(node.input_tensors[0])
        if found is None:
            raise ValueError(
                f"Layer {node.operation.name!r} must emit {len(keep)} channels but none of its input channels is "
                "kept; shrink cannot compute them"
            )
        x, order = found
        return [self.rebuild_kept(node, build, x, order, keep)]


def _conv_connections(kernel, bias, padding):
    reaches = (kernel != 0).any(axis=(0, 1))
    coef = kernel.astype("float64").sum(axis=(0, 1))
    foldable = padding == "valid" or kernel.shape[:2] == (1, 1)
    return reaches, coef, np.asarray(bias, "float64"), foldable


def _bias(layer, weights, width):
    return weights.get("bias", np.zeros(width)) if layer.use_bias else np.zeros(width)


def _out_slices(node, layer, view=None, attr="kernel"):
    out = node.output_tensors[0]
    specs = [registry.SliceSpec(out, attr, -1 if view is None else len(view) - 1, "out", view)]
    if getattr(layer, "use_bias", False) and getattr(layer, "bias", None) is not None:
        specs.append(registry.SliceSpec(out, "bias", 0, "out"))
    return specs


@registry.register(keras.layers.Dense)
class DenseHandler(KernelHandler):
    def weight_slices(self, node, coupling):
        return [*_out_slices(node, node.operation), registry.SliceSpec(node.input_tensors[0], "kernel", 0, "in")]

    def connections(self, layer, weights):
        kernel = weights["kernel"]
        bias = _bias(layer, weights, kernel.shape[-1])
        return Connections(kernel != 0, kernel.astype("float64"), np.asarray(bias, "float64"), True)

    def rebuild_kept(self, node, build, x, order, keep):
        layer = node.operation
        kernel = build.plan.effective_weights(layer)["kernel"][np.ix_(order, keep)]
        bias = self.folded_bias(node, build.plan, order, keep)
        use_bias = bool(layer.use_bias or np.any(bias))
        new = type(layer).from_config(deployment_config(layer, units=len(keep), use_bias=use_bias))
        y = new(x)
        new.set_weights([kernel, bias] if use_bias else [kernel])
        return y, keep


@registry.register(keras.layers.Conv2D)
class Conv2DHandler(KernelHandler):
    def weight_slices(self, node, coupling):
        return [*_out_slices(node, node.operation), registry.SliceSpec(node.input_tensors[0], "kernel", 2, "in")]

    def connections(self, layer, weights):
        kernel = weights["kernel"]
        return Connections(*_conv_connections(kernel, _bias(layer, weights, kernel.shape[-1]), layer.padding))

    def rebuild_kept(self, node, build, x, order, keep):
        layer = node.operation
        kernel = build.plan.effective_weights(layer)["kernel"][:, :, order][..., keep]
        bias = self.folded_bias(node, build.plan, order, keep)
        boxes = crop.support_boxes(kernel)
        size = kernel.shape[:2]
        everything = np.arange(len(keep))

        def masked(inputs):
            return cropped_conv(layer, inputs, kernel, bias, crop.union_box(boxes, size), layer.name), everything

        forms = {"masked": masked}
        groups = crop.group_by_box(boxes, size)
        if len(groups) > 1 and build.plan.order_free(node.output_tensors[0]):

            def grouped(inputs):
                outs, positions = [], []
                for box, members in sorted(groups.items(), key=lambda item: item[1][0]):
                    name = f"{layer.name}_{box.size[0]}x{box.size[1]}_{box.top}_{box.left}"
                    outs.append(cropped_conv(layer, inputs, kernel[..., members], bias[members], box, name))
                    positions.extend(members)
                joined = keras.layers.Concatenate(name=f"{layer.name}_concat")(outs)
                return joined, np.asarray(positions)

            forms["grouped"] = grouped
        y, positions = build.choose_form(layer.name, forms, x)
        return y, keep[positions]


@registry.register(keras.layers.DepthwiseConv2D)
class DepthwiseConv2DHandler(KernelHandler):
    """Output ``c*m + k`` reads input ``c`` alone, so each input is tied to its ``m`` outputs."""

    def connections(self, layer, weights):
        kernel = weights["kernel"]  # (kh, kw, C, m)
        channels, mult = kernel.shape[2], kernel.shape[3]
        reaches_c, coef_c, bias, foldable = _conv_connections(kernel, _bias(layer, weights, channels * mult), layer.padding)
        reaches = np.zeros((channels, channels * mult), bool)
        coef = np.zeros((channels, channels * mult))
        rows = np.repeat(np.arange(channels), mult)
        reaches[rows, np.arange(channels * mult)] = reaches_c.ravel()
        coef[rows, np.arange(channels * mult)] = coef_c.ravel()
        return Connections(reaches, coef, bias, foldable)

    def weight_slices(self, node, coupling):
        kh, kw, channels, mult = node.operation.kernel.shape
        return _out_slices(node, node.operation, view=(kh, kw, channels * mult))

    def couple(self, node, plan):
        mult = node.operation.depth_multiplier
        channels = plan.channels(node.input_tensors[0])
        outputs = np.arange(channels * mult)
        plan.tie(node.input_tensors[0], outputs // mult, node.output_tensors[0], outputs)

    def rebuild_kept(self, node, build, x, order, keep):
        layer = node.operation
        mult = layer.depth_multiplier
        out_order = (np.asarray(order)[:, None] * mult + np.arange(mult)).ravel()
        if set(out_order.tolist()) != set(keep.tolist()):
            raise AssertionError(f"{layer.name}: depthwise outputs not tied to their inputs")
        kernel = build.plan.effective_weights(layer)["kernel"][:, :, order]
        bias = self.folded_bias(node, build.plan, order, out_order)
        canonical = kernel.reshape(kernel.shape[0], kernel.shape[1], 1, -1)
        box = crop.union_box(crop.support_boxes(canonical), kernel.shape[:2])
        return cropped_conv(layer, x, kernel, bias, box, layer.name), out_order


@registry.register(keras.layers.SeparableConv2D)
class SeparableConv2DHandler(KernelHandler):
    """Depthwise then pointwise: an input channel reaches output ``j`` through any of its ``m`` depthwise
    maps with a non-zero pointwise weight. Kernels keep their size (the depthwise part is shared)."""

    def weight_slices(self, node, coupling):
        layer, x = node.operation, node.input_tensors[0]
        kh, kw, channels, mult = layer.depthwise_kernel.shape
        return [
            *_out_slices(node, layer, attr="pointwise_kernel"),
            registry.SliceSpec(x, "depthwise_kernel", 2, "in"),
            registry.SliceSpec(x, "pointwise_kernel", 2, "in", (1, 1, channels, mult, layer.pointwise_kernel.shape[-1])),
        ]

    def connections(self, layer, weights):
        depthwise, pointwise = weights["depthwise_kernel"], weights["pointwise_kernel"][0, 0]
        channels, mult = depthwise.shape[2], depthwise.shape[3]
        live = (depthwise != 0).any(axis=(0, 1)).reshape(-1)  # per depthwise map c*m + k
        maps = pointwise.reshape(channels, mult, -1)
        reaches = ((live.reshape(channels, mult, 1)) & (maps != 0)).any(axis=1)
        coef = np.einsum("ck,ckj->cj", depthwise.astype("float64").sum(axis=(0, 1)), maps.astype("float64"))
        bias = _bias(layer, weights, pointwise.shape[-1])
        foldable = layer.padding == "valid" or depthwise.shape[:2] == (1, 1)
        return Connections(reaches, coef, np.asarray(bias, "float64"), foldable)

    def rebuild_kept(self, node, build, x, order, keep):
        layer = node.operation
        weights = build.plan.effective_weights(layer)
        mult = layer.depth_multiplier
        maps = (np.asarray(order)[:, None] * mult + np.arange(mult)).ravel()
        depthwise = weights["depthwise_kernel"][:, :, order]
        pointwise = weights["pointwise_kernel"][:, :, maps][..., keep]
        bias = self.folded_bias(node, build.plan, order, keep)
        use_bias = bool(layer.use_bias or np.any(bias))
        new = type(layer).from_config(deployment_config(layer, filters=len(keep), use_bias=use_bias))
        y = new(x)
        new.set_weights([depthwise, pointwise, bias] if use_bias else [depthwise, pointwise])
        return y, keep


def cropped_conv(layer, x, kernel, bias, box, name):
    """``layer`` (Conv2D or DepthwiseConv2D) with ``kernel`` cropped to ``box``, preceded by the explicit
    padding or cropping that makes it read exactly what the full kernel read."""
    size = box.size
    dims = x.shape[1:3]
    pads = [
        crop.axis_padding(dims[a], layer.kernel_size[a], layer.strides[a], layer.dilation_rate[a], layer.padding, start, size[a])
        for a, start in enumerate((box.top, box.left))
    ]
    if any(p is None for p in pads):  # unknown input size with a stride: keep the full kernel
        box, size, padding = crop.Box(0, 0, *layer.kernel_size), tuple(layer.kernel_size), layer.padding
    else:
        modes = [crop.keras_padding(dims[a], size[a], layer.strides[a], layer.dilation_rate[a], *pads[a]) for a in range(2)]
        padding = modes[0] if modes[0] is not None and modes[0] == modes[1] else None
        if padding is None:  # e.g. an even size: asymmetric padding Keras cannot express
            x, padding = _explicit_padding(x, pads, name), "valid"
    kernel = box.crop(kernel)
    use_bias = bool(layer.use_bias or np.any(bias))
    overrides = dict(kernel_size=size, padding=padding, use_bias=use_bias, name=name)
    if isinstance(layer, keras.layers.Conv2D):
        overrides["filters"] = kernel.shape[-1]
    new = type(layer).from_config(deployment_config(layer, **overrides))
    y = new(x)
    new.set_weights([kernel, bias.astype(kernel.dtype)] if use_bias else [kernel])
    return y


def _explicit_padding(x, pads, name):
    cut = tuple((max(-before, 0), max(-after, 0)) for before, after in pads)
    add = tuple((max(before, 0), max(after, 0)) for before, after in pads)
    if any(v for pair in cut for v in pair):
        x = keras.layers.Cropping2D(cut, name=f"{name}_crop")(x)
    if any(v for pair in add for v in pair):
        x = keras.layers.ZeroPadding2D(add, name=f"{name}_pad")(x)
    return x

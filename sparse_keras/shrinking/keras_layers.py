"""Shrinking Keras' channel-preserving and merging layers: BN, activations, pooling, padding, dropout,
``Add`` and the other merges, ``Concatenate`` and ``Flatten``.

These layers own no kernels; they tie channels together (so a channel goes everywhere or nowhere) and
carry constants forward: pooling and dropout keep a constant map constant, a ``ZeroPadding2D`` turns a
non-zero one into a varying map (zero border), and pointwise layers (BN, activations) are run on one pixel.
"""

import keras
import numpy as np

from sparse_keras.shrinking import kernel_layers
from sparse_keras.shrinking import registry

# Each output value is a function of the same channel's value at that position (weights per channel).
_POINTWISE = (
    keras.layers.BatchNormalization,
    keras.layers.ReLU,
    keras.layers.LeakyReLU,
    keras.layers.ELU,
    keras.layers.Activation,
)
# At inference a constant map stays the same constant (pooling averages or picks equal values).
_KEEPS_CONSTANTS = (
    keras.layers.Dropout,
    keras.layers.SpatialDropout1D,
    keras.layers.SpatialDropout2D,
    keras.layers.SpatialDropout3D,
    keras.layers.GaussianNoise,
    keras.layers.GaussianDropout,
    keras.layers.Identity,
    keras.layers.MaxPooling1D,
    keras.layers.MaxPooling2D,
    keras.layers.MaxPooling3D,
    keras.layers.AveragePooling1D,
    keras.layers.AveragePooling2D,
    keras.layers.AveragePooling3D,
    keras.layers.GlobalAveragePooling1D,
    keras.layers.GlobalAveragePooling2D,
    keras.layers.GlobalAveragePooling3D,
    keras.layers.GlobalMaxPooling1D,
    keras.layers.GlobalMaxPooling2D,
    keras.layers.GlobalMaxPooling3D,
    keras.layers.Cropping1D,
    keras.layers.Cropping2D,
    keras.layers.Cropping3D,
    keras.layers.UpSampling1D,
    keras.layers.UpSampling2D,
    keras.layers.UpSampling3D,
)
# A constant c becomes a map with a zero border: constant only if c == 0.
_ZERO_PADDING = (keras.layers.ZeroPadding1D, keras.layers.ZeroPadding2D, keras.layers.ZeroPadding3D)


class TyingHandler(registry.Handler):
    """A layer that only moves channels around: a dropped constant input channel is dropped (and carried as
    a constant) on its output too, so it never requires an input channel."""

    def required(self, node, position, plan):
        return np.zeros(plan.channels(node.input_tensors[position]), bool)

    def weight_slices(self, node, coupling):
        return []


def _none():
    return [(None, np.zeros(0, int))]


class ChannelwiseHandler(TyingHandler):
    """Output channel ``c`` depends on input channel ``c`` alone; per-channel weights are sliced."""

    order = "same"

    def supports(self, layer):
        if getattr(layer, "data_format", "channels_last") != "channels_last":
            return False
        if isinstance(layer, keras.layers.BatchNormalization):
            return layer.axis in (-1, [-1]) or _is_last_axis(layer)
        if isinstance(layer, keras.layers.Activation):
            return kernel_layers.activate(layer.activation, np.zeros(1)) is not None
        return True

    def couple(self, node, plan):
        plan.tie_all(node.input_tensors[0], node.output_tensors[0])

    def weight_slices(self, node, coupling):
        layer, x = node.operation, node.input_tensors[0]
        if isinstance(layer, keras.layers.BatchNormalization):
            attrs = ("gamma", "beta", "moving_mean", "moving_variance")
            return [registry.SliceSpec(x, a, 0, "norm") for a in attrs if getattr(layer, a, None) is not None]
        return []

    def constants(self, node, in_consts, plan):
        v, layer = in_consts[0], node.operation
        if np.isnan(v).all() or isinstance(layer, _KEEPS_CONSTANTS):
            return [v]
        if isinstance(layer, _ZERO_PADDING):
            return [np.where(v == 0, 0.0, np.nan)]
        # A pointwise layer maps a constant map to the constant it maps one pixel to: run it on one pixel.
        rank = len(node.input_tensors[0].shape)
        pixel = np.where(np.isnan(v), 0.0, v).astype("float32").reshape((1,) * (rank - 1) + (-1,))
        y = np.asarray(keras.ops.convert_to_numpy(layer(pixel, training=False)), "float64").ravel()
        return [np.where(np.isnan(v), np.nan, y)]

    def rebuild(self, node, build):
        found = build.input(node.input_tensors[0])
        if found is None:
            return _none()
        x, order = found
        layer = node.operation
        width = build.plan.channels(node.input_tensors[0])
        clone = build.clone(layer)
        y = clone(x)
        clone.set_weights([_per_channel(w, order, width) for w in layer.get_weights()])
        return [(y, order)]


def _is_last_axis(layer):
    axis = layer.axis[0] if isinstance(layer.axis, (list, tuple)) and len(layer.axis) == 1 else layer.axis
    rank = len(layer.input.shape) if layer._inbound_nodes else None
    return isinstance(axis, int) and rank is not None and axis == rank - 1


def _per_channel(weight, order, width):
    if weight.ndim and weight.shape[-1] == width:
        return weight[..., order]
    raise ValueError(f"Cannot slice a weight of shape {weight.shape} to {len(order)} of {width} channels")


for _cls in _POINTWISE + _KEEPS_CONSTANTS + _ZERO_PADDING:
    registry.register(_cls)(ChannelwiseHandler)


class MergeHandler(TyingHandler):
    """Element-wise merges: channel ``c`` of every input and of the output go together."""

    order = "strict"
    combine = None  # numpy function of the input constants

    def couple(self, node, plan):
        for tensor in node.input_tensors:
            plan.tie_all(tensor, node.output_tensors[0])

    def constants(self, node, in_consts, plan):
        return [self.combine(np.stack(in_consts))]

    def rebuild(self, node, build):
        found = [(p, build.input(t)) for p, t in enumerate(node.input_tensors) if not build.plan.detached(node, p)]
        if any(value is None for _, value in found):
            return _none()
        order = found[0][1][1]
        for p, (_, other) in found[1:]:
            if not np.array_equal(other, order):
                raise AssertionError(f"{node.operation.name}: inputs arrive in different channel orders")
        xs = [x for _, (x, _) in found]
        y = self.merge(node, build, xs, order)
        return [(y, order)]

    def merge(self, node, build, xs, order):
        return build.clone(node.operation)(xs)


@registry.register(keras.layers.Add)
class AddHandler(MergeHandler):
    """A constant input is added as an offset instead, so the branch computing it goes (the identity path
    of a vanished residual branch)."""

    detaches_constant_inputs = True

    @staticmethod
    def combine(values):
        return values.sum(axis=0)

    def merge(self, node, build, xs, order):
        y = xs[0] if len(xs) == 1 else build.clone(node.operation)(xs)
        offset = sum(build.plan.const(t)[order] for p, t in enumerate(node.input_tensors) if build.plan.detached(node, p))
        if np.any(offset):
            y = keras.layers.Rescaling(1.0, offset=np.asarray(offset, "float32").tolist(), name=f"{node.operation.name}_offset")(y)
        return y


def _merge(cls, combine):
    handler = type(f"{cls.__name__}Handler", (MergeHandler,), {"combine": staticmethod(combine)})
    return registry.register(cls)(handler)


_merge(keras.layers.Subtract, lambda v: v[0] - v[1])
_merge(keras.layers.Multiply, lambda v: v.prod(axis=0))
_merge(keras.layers.Average, lambda v: v.mean(axis=0))
_merge(keras.layers.Maximum, lambda v: v.max(axis=0))
_merge(keras.layers.Minimum, lambda v: v.min(axis=0))


@registry.register(keras.layers.Concatenate)
class ConcatenateHandler(TyingHandler):
    """Channels of the output are the inputs' channels side by side; an input with none kept is left out."""

    order = "same"

    def supports(self, layer):
        return layer.axis == -1 or (layer._inbound_nodes and layer.axis == len(layer.output.shape) - 1)

    def couple(self, node, plan):
        offset = 0
        for tensor in node.input_tensors:
            width = plan.channels(tensor)
            plan.tie(tensor, np.arange(width), node.output_tensors[0], offset + np.arange(width))
            offset += width

    def constants(self, node, in_consts, plan):
        return [np.concatenate(in_consts)]

    def rebuild(self, node, build):
        xs, orders, offset = [], [], 0
        for tensor in node.input_tensors:
            found = build.input(tensor)
            if found is not None:
                xs.append(found[0])
                orders.append(offset + np.asarray(found[1]))
            offset += build.plan.channels(tensor)
        if not xs:
            return _none()
        y = xs[0] if len(xs) == 1 else build.clone(node.operation)(xs)
        return [(y, np.concatenate(orders))]


@registry.register(keras.layers.Flatten)
class FlattenHandler(TyingHandler):
    """Feature ``p*C + c`` of a channels-last flatten is channel ``c`` at position ``p``: all spatial copies
    of a channel go together, which drops the following Dense's rows channel by channel."""

    order = "same"

    def supports(self, layer):
        return getattr(layer, "data_format", "channels_last") == "channels_last"

    def couple(self, node, plan):
        width = plan.channels(node.input_tensors[0])
        features = np.arange(plan.channels(node.output_tensors[0]))
        plan.tie(node.input_tensors[0], features % width, node.output_tensors[0], features)

    def constants(self, node, in_consts, plan):
        positions = plan.channels(node.output_tensors[0]) // len(in_consts[0])
        return [np.tile(in_consts[0], positions)]

    def rebuild(self, node, build):
        found = build.input(node.input_tensors[0])
        if found is None:
            return _none()
        x, order = found
        width = build.plan.channels(node.input_tensors[0])
        positions = build.plan.channels(node.output_tensors[0]) // width
        y = build.clone(node.operation)(x)
        return [(y, (np.arange(positions)[:, None] * width + np.asarray(order)[None, :]).ravel())]


def _scalar(value):
    return np.ndim(value) == 0


class PerChannelPreprocessing(ChannelwiseHandler):
    """``Rescaling`` with scalar scale/offset and ``Normalization`` over the last axis: channel ``c`` maps to
    channel ``c`` (usually at the model input, whose channels stay; handled so they pass channels through)."""

    def supports(self, layer):
        if isinstance(layer, keras.layers.Normalization):
            axis = tuple(layer.axis) if isinstance(layer.axis, (list, tuple)) else (layer.axis,)
            return axis == (-1,) and not layer.invert
        return _scalar(layer.scale) and _scalar(layer.offset)

    def rebuild(self, node, build):
        layer = node.operation
        if not isinstance(layer, keras.layers.Normalization):
            return super().rebuild(node, build)
        found = build.input(node.input_tensors[0])
        if found is None:
            return _none()
        x, order = found
        mean, variance = (np.asarray(keras.ops.convert_to_numpy(v)).reshape(-1) for v in (layer.mean, layer.variance))
        new = keras.layers.Normalization(axis=-1, mean=mean[order].tolist(), variance=variance[order].tolist(), name=layer.name)
        return [(new(x), order)]


registry.register(keras.layers.Rescaling)(PerChannelPreprocessing)
registry.register(keras.layers.Normalization)(PerChannelPreprocessing)


@registry.register(keras.layers.Reshape)
class ReshapeHandler(TyingHandler):
    """A reshape that keeps the last axis (``(C,) -> (1, 1, C)``, as squeeze-and-excitation blocks and
    MobileNet's head do) ties channel ``c`` to channel ``c``; one to a flat vector is a ``Flatten``."""

    order = "same"

    def supports(self, layer):
        if not layer._inbound_nodes or len(layer._inbound_nodes) != 1:
            return False
        x, y = layer.input.shape, layer.output.shape
        if None in x[1:] or None in y[1:]:
            return False
        return x[-1] == y[-1] or len(y) == 2

    @staticmethod
    def _flat(node):
        return len(node.output_tensors[0].shape) == 2 and node.output_tensors[0].shape[-1] != node.input_tensors[0].shape[-1]

    def couple(self, node, plan):
        x, y = node.input_tensors[0], node.output_tensors[0]
        width = plan.channels(x)
        features = np.arange(plan.channels(y))
        plan.tie(x, features % width, y, features)

    def constants(self, node, in_consts, plan):
        return [np.tile(in_consts[0], plan.channels(node.output_tensors[0]) // len(in_consts[0]))]

    def rebuild(self, node, build):
        found = build.input(node.input_tensors[0])
        if found is None:
            return _none()
        x, order = found
        order = np.asarray(order)
        if not self._flat(node):
            target = (*node.output_tensors[0].shape[1:-1], len(order))
            return [(keras.layers.Reshape(target, name=node.operation.name)(x), order)]
        width = build.plan.channels(node.input_tensors[0])
        positions = build.plan.channels(node.output_tensors[0]) // width
        y = keras.layers.Reshape((positions * len(order),), name=node.operation.name)(x)
        return [(y, (np.arange(positions)[:, None] * width + order[None, :]).ravel())]


class ChannelMixingHandler(registry.KeepHandler):
    """Layers that normalise across channels: removing a channel, even an all-zero one, changes the mean and
    variance every other channel is normalised with, so their channels are never pruned."""

    def blocking_reason(self, node):
        layer = node.operation
        return f"{type(layer).__name__} {layer.name!r} normalises across channels, so removing one changes the others"


for _cls in (keras.layers.LayerNormalization, keras.layers.GroupNormalization, keras.layers.UnitNormalization):
    registry.register(_cls)(ChannelMixingHandler)

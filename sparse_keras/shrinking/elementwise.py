"""Shrinking element-wise arithmetic in a functional graph: ``keras.ops`` calls on tensors (``x + 3.0``,
``x * gate``) and the weightless element-wise layers ``keras.applications`` define for themselves.

Each combines same-shaped operands channel by channel, so channel ``c`` of every operand and of the result
go together, and the operation is simply called again on the kept channels.
"""

import keras
import numpy as np

from sparse_keras.shrinking import registry
from sparse_keras.shrinking.keras_layers import TyingHandler
from sparse_keras.shrinking.keras_layers import _none


class ElementwiseOpHandler(TyingHandler):
    """``keras.ops`` arithmetic called on tensors in a functional graph (``x + 3.0``, ``x * gate``, as in
    MobileNetV3's hard-swish): channel ``c`` of every tensor operand and of the result go together, and the
    operation is simply called again on the kept channels (scalars stay as they are)."""

    order = "strict"

    def couple(self, node, plan):
        out = node.output_tensors[0]
        for tensor in node.input_tensors:
            if plan.channels(tensor) == plan.channels(out):
                plan.tie_all(tensor, out)

    def _operands_fit(self, node, plan):
        width = plan.channels(node.output_tensors[0])
        return all(plan.channels(t) == width for t in node.input_tensors)

    def constants(self, node, in_consts, plan):
        if not self._operands_fit(node, plan):
            return [np.full(plan.channels(node.output_tensors[0]), np.nan)]
        values = {id(t): np.where(np.isnan(v), 0.0, v).astype("float32")[None, :] for t, v in zip(node.input_tensors, in_consts)}
        args, kwargs = node.arguments.fill_in(values)
        y = np.asarray(keras.ops.convert_to_numpy(node.operation(*args, **kwargs)), "float64").reshape(-1)
        varies = np.logical_or.reduce([np.isnan(v) for v in in_consts])
        return [np.where(varies, np.nan, y)]

    def required(self, node, position, plan):
        if self._operands_fit(node, plan):
            return np.zeros(plan.channels(node.input_tensors[position]), bool)
        return np.ones(plan.channels(node.input_tensors[position]), bool)

    def weight_slices(self, node, coupling):
        return [] if self._operands_fit(node, coupling) else None

    def rebuild(self, node, build):
        found = [build.input(t) for t in node.input_tensors]
        if any(f is None for f in found):
            return _none()
        order = found[0][1]
        if any(not np.array_equal(f[1], order) for f in found[1:]):
            raise AssertionError(f"{node.operation.name}: operands arrive in different channel orders")
        args, kwargs = node.arguments.fill_in({id(t): f[0] for t, f in zip(node.input_tensors, found)})
        return [(node.operation(*args, **kwargs), order)]


def _register_elementwise_ops():
    from keras.src.ops import numpy as numpy_ops  # the op classes have no public path

    for name in ("Add", "Subtract", "Multiply", "Divide", "TrueDivide", "Maximum", "Minimum"):
        cls = getattr(numpy_ops, name, None)
        if cls is not None:
            registry.register(cls)(ElementwiseOpHandler)


_register_elementwise_ops()


def _register_application_layers():
    """Weightless element-wise layers that ``keras.applications`` models define for themselves: each combines
    same-shaped operands channel by channel, so it shrinks like ``keras.ops`` arithmetic."""
    from keras.src.applications import inception_resnet_v2  # no public path either

    # InceptionResNetV2's residual merge, ``inputs[0] + inputs[1] * scale``.
    cls = getattr(inception_resnet_v2, "CustomScaleLayer", None)
    if cls is not None:
        registry.register(cls)(ElementwiseOpHandler)


_register_application_layers()

"""Per-layer-type shrinking rules, looked up by class (never by name).

A :class:`Handler` tells :func:`sparse_keras.shrinking.shrink` four things about one layer type:

* ``constants``: which output channels are spatially constant (and their value) given which input channels
  are, e.g. a conv output whose kernel is zero is its bias;
* ``couple``: which input and output channels must be kept or dropped together (an ``Add`` ties its inputs'
  channel ``c`` to its output's channel ``c``; a conv ties nothing, it creates new channels);
* ``required``: which constant input channels the layer cannot absorb when they are dropped (a 'same' 3x3
  conv cannot fold a non-zero constant into its bias because of the zero border);
* ``rebuild``: the new layer(s) computing the kept output channels from the kept input channels;
* ``weight_slices``: which slice of which weight goes with each channel it reads or writes, which makes the
  coupled channel groups of :func:`sparse_keras.structure.coupled_groups` (regularizers, ADMM, targets).

Built-in Keras layers are registered in :mod:`~sparse_keras.shrinking.keras_layers` and
:mod:`~sparse_keras.shrinking.kernel_layers`; the library's own layers (LRSD, LST, CSC) register theirs
with :func:`register` next to their definition. A layer type without a handler is kept as it is, with all
its input channels (:class:`KeepHandler`), which is always exact.
"""

import numpy as np

_HANDLERS = {}


class Handler:
    """Base class: the rules of :class:`KeepHandler` unless overridden.

    ``order`` says how the layer reads its inputs' channel order: ``"any"`` (it permutes its weights, e.g. a
    conv), ``"same"`` (its output has its input's order, e.g. BN) or ``"strict"`` (it needs the original
    order). ``is_kernel`` marks layers that create channels (their outputs may be rounded to multiples).
    """

    order = "strict"
    is_kernel = False

    def supports(self, layer):
        """Whether this handler understands this particular instance (e.g. channels-last only)."""
        return True

    def constants(self, node, in_consts, plan):
        """Per output tensor, a float array ``(channels,)``: the constant value of each channel, NaN where the
        channel varies. ``in_consts`` holds the same for each input tensor."""
        return [np.full(plan.channels(t), np.nan) for t in node.output_tensors]

    def couple(self, node, plan):
        """Ties channels that are kept or dropped together with ``plan.tie(tensor_a, idx_a, tensor_b, idx_b)``."""

    def required(self, node, position, plan):
        """Boolean mask of the channels of input ``position`` that must stay even if constant."""
        return np.ones(plan.channels(node.input_tensors[position]), bool)

    def rebuild(self, node, build):
        """Returns ``[(new tensor or None, order)]`` per output; ``order`` lists the original channel each new
        channel holds. ``build`` is the :class:`~sparse_keras.shrinking.rebuild.Builder`."""
        raise NotImplementedError

    def weight_slices(self, node, coupling):
        """The weights that go with channels: a list of :class:`SliceSpec`, ``[]`` for a layer without
        per-channel weights, or ``None`` if the handler does not know (its channels cannot be pruned)."""
        return None

    def blocking_reason(self, node):
        """Why the channels this layer reads and writes cannot be pruned, or ``None`` if they can."""
        return None


class SliceSpec:
    """Channel ``k`` of ``tensor`` owns index ``k`` along ``axis`` of weight ``attr`` of the layer (seen in
    shape ``view`` if given, e.g. a depthwise kernel ``(kh, kw, C, m)`` as ``(kh, kw, C*m)``). ``role`` is
    ``"out"`` for a slice producing the channel, ``"in"`` for one reading it, ``"norm"`` for per-channel
    statistics and affine terms (BatchNormalization)."""

    def __init__(self, tensor, attr, axis, role, view=None):
        self.tensor, self.attr, self.axis, self.role, self.view = tensor, attr, axis, role, view


class KeepHandler(Handler):
    """Any layer: kept unchanged (a fresh copy with the same config and weights), fed every channel in the
    original order. Exact for every layer, but nothing around it can shrink through it."""

    def blocking_reason(self, node):
        layer = node.operation
        return f"{type(layer).__name__} {getattr(layer, 'name', '?')!r} is not supported by shrink in this configuration (register a handler: sparse_keras.shrinking.register)"

    def rebuild(self, node, build):
        layer = node.operation
        values = {}
        for tensor in node.input_tensors:
            values[id(tensor)] = build.full_input(tensor, layer)
        args, kwargs = node.arguments.fill_in(values)
        clone = build.clone(layer)
        outputs = clone(*args, **kwargs)
        clone.set_weights(layer.get_weights())
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        return [(out, np.arange(build.plan.channels(t))) for out, t in zip(outputs, node.output_tensors)]


KEEP = KeepHandler()


def register(layer_class):
    """Class decorator: ``@register(keras.layers.Conv2D) class Conv2DHandler(Handler): ...``.

    The handler serves ``layer_class`` and its subclasses, unless a subclass has a handler of its own.
    """
    if not isinstance(layer_class, type):
        raise ValueError(f"register() needs a layer class, got {layer_class!r}")

    def decorator(handler_class):
        if not (isinstance(handler_class, type) and issubclass(handler_class, Handler)):
            raise ValueError(f"register({layer_class.__name__}) needs a Handler subclass, got {handler_class!r}")
        _HANDLERS[layer_class] = handler_class()
        return handler_class

    return decorator


def handler_for(layer):
    """The handler of the most specific registered class of ``layer`` that supports it, else :data:`KEEP`."""
    for cls in type(layer).__mro__:
        handler = _HANDLERS.get(cls)
        if handler is not None:
            return handler if handler.supports(layer) else KEEP
    return KEEP

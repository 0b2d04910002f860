"""Following channels through a functional model's graph.

A kernel's learned input width ``d_{i-1}`` (eq. 10) is the number of channels its producers still
emit. This module propagates a per-channel "alive" mask from the inputs to the outputs of a functional
(or sequential) model: kernel layers emit their alive output kernels, element-wise merges combine
their inputs' masks, concatenation concatenates them, and shape-preserving layers pass them through.

Keras exposes no public API for a model's nodes, so this reads ``_nodes_by_depth`` (the structure
``keras.Model`` itself executes); a model without one (subclassed) gets no graph information and
callers fall back to treating every input channel as alive.
"""

import keras
import numpy as np

_UNION = (keras.layers.Add, keras.layers.Maximum, keras.layers.Average, keras.layers.Subtract)
_INTERSECTION = (keras.layers.Multiply, keras.layers.Minimum)


def _graph_of(model):
    graph = getattr(model, "_functional", None) or model
    return graph if hasattr(graph, "_nodes_by_depth") else None


def propagate_channels(model, emitted_channels):
    """Returns ``{id(layer): alive mask of its (first) input's channels}`` for every layer of ``model``.

    ``emitted_channels(layer, input_mask)`` returns the output channel mask of a layer that changes
    channels by its weights (a kernel layer), or ``None`` to let the generic rules decide.
    """
    graph = _graph_of(model)
    if graph is None:
        return {}
    masks, inputs_of = {}, {}
    for depth in sorted(graph._nodes_by_depth, reverse=True):
        for node in graph._nodes_by_depth[depth]:
            layer = node.operation
            in_masks = [_mask_of(t, masks) for t in node.input_tensors]
            if in_masks:
                inputs_of.setdefault(id(layer), in_masks[0])
            out = emitted_channels(layer, in_masks[0]) if in_masks else None
            for tensor in node.output_tensors:
                masks[id(tensor)] = out if out is not None else _generic(layer, node, in_masks, tensor)
    return inputs_of


def _channels(tensor):
    dim = tensor.shape[-1] if tensor.shape else None
    return int(dim) if dim is not None else 0


def _mask_of(tensor, masks):
    mask = masks.get(id(tensor))
    return mask if mask is not None else np.ones(_channels(tensor), bool)


def _generic(layer, node, in_masks, out_tensor):
    width = _channels(out_tensor)
    if not in_masks:
        return np.ones(width, bool)
    if isinstance(layer, _UNION) and all(len(m) == width for m in in_masks):
        return np.logical_or.reduce(in_masks)
    if isinstance(layer, _INTERSECTION) and all(len(m) == width for m in in_masks):
        return np.logical_and.reduce(in_masks)
    if isinstance(layer, keras.layers.Concatenate) and layer.axis in (-1, len(out_tensor.shape) - 1):
        joined = np.concatenate(in_masks)
        return joined if len(joined) == width else np.ones(width, bool)
    if isinstance(layer, keras.layers.Flatten):
        # Channels-last flattening repeats the channel pattern once per spatial position.
        mask = in_masks[0]
        return np.tile(mask, width // len(mask)) if len(mask) and width % len(mask) == 0 else np.ones(width, bool)
    if len(in_masks) == 1 and len(in_masks[0]) == width:
        return in_masks[0]  # BN, activations, pooling, dropout, padding: channels pass through
    return np.ones(width, bool)


def nodes_in_order(model):
    """The call nodes of a functional (or built sequential) model in execution order, inputs first.

    Each node is one call of a layer (``node.operation``) on ``node.input_tensors``; a layer called twice
    appears twice. Raises ``ValueError`` for a model without a graph (a subclassed model), because code that
    rebuilds a model from its graph cannot fall back to guessing.
    """
    found = _graph_of(model)
    if found is None:
        raise ValueError(
            f"Model {model.name!r} ({type(model).__name__}) has no functional graph; build it with the "
            "functional API or as a keras.Sequential with an Input"
        )
    return [node for depth in sorted(found._nodes_by_depth, reverse=True) for node in found._nodes_by_depth[depth]]

"""Which layers ``shrink`` cannot make smaller, so that it can say so instead of passing them silently."""

import warnings

from sparse_keras.shrinking import registry


def kept_whole(model):
    """The layers of ``model`` that hold a kernel (a weight of rank >= 2) but have no shrinking rule.

    Such layers (Conv1D, Conv3D, grouped or channels-first convs, attention, nested models...) are copied
    unchanged with every input channel, which is exact but removes nothing from them or from the layers
    feeding them. Returns ``[(layer name, class name)]`` in model order.
    """
    found = []
    for layer in model.layers:
        has_kernel = any(len(w.shape) >= 2 for w in layer.weights)
        if has_kernel and registry.handler_for(layer) is registry.KEEP:
            found.append((layer.name, type(layer).__name__))
    return found


def warn_kept_whole(model):
    """Warns (``UserWarning``) naming the layers :func:`kept_whole` finds; returns them."""
    found = kept_whole(model)
    if found:
        listed = ", ".join(f"{name} ({kind})" for name, kind in found)
        warnings.warn(
            f"shrink keeps {len(found)} layer(s) of model {model.name!r} whole, without a shrinking rule for "
            f"their kind: {listed}. Their channels, and the channels of the layers feeding them, are not "
            "removed. Supported: channels-last Conv2D (groups=1), DepthwiseConv2D, SeparableConv2D, Dense and "
            "the sparse_keras layers; others plug in with sparse_keras.shrinking.register.",
            UserWarning,
            stacklevel=3,
        )
    return found

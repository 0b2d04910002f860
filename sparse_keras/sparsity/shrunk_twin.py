"""Training the shrunk model in place of the masked model it came from, and writing its weights back.

Masked fine-tuning (after ADMM's ``W := F``, after thresholding) spends every step on the zero channels of
the dense model. :func:`~sparse_keras.shrinking.shrink.shrink` removes them with identical outputs, so the
fine-tuning can run on the shrunk model instead (the ADMM paper's CNN at 6x fewer multiply-adds: a
training step 4x shorter on a CPU) and its weights be written back into the masked model, which a run's
reports, checkpoints and exports go on using.

Writing back is exact where shrink only selects channels: each weight of the shrunk model is its
original's entries at the kept channels (a kernel's inputs on axis -2 and outputs on the last axis, a
per-channel vector's kept channels), up to a fixed shift of biases, BatchNormalization's ``beta`` and
moving mean (a constant channel that shrink folds into its reader: it comes from weights the shrunk model
does not hold, so it stays fixed while the shrunk model trains). :class:`ShrunkTwin` checks this for every
weight when it is made and raises :class:`UnmappableShrink` naming the first layer it cannot map (a kernel
cropped to its learned size, an LRSD layer rebuilt in another form, a shared layer): such a model is
fine-tuned masked.

Masks that zero less than whole channels (single kernels, kernel-size rings) are carried over to the
shrunk model, so the zeros it still holds stay zero.
"""

import keras
import numpy as np

from sparse_keras.shrinking.shrink import build_shrunk
from sparse_keras.sparsity import masking

# Per-channel vectors that may differ from their original by a fixed shift (a folded constant channel).
SHIFTABLE = ("bias", "beta", "moving_mean")


class UnmappableShrink(ValueError):
    """The shrunk model is not a channel selection of the original: its weights cannot be written back."""


class ShrunkTwin:
    """The shrunk copy of ``model`` (:attr:`shrunk`) and the way back: :meth:`write_back`.

    Args:
      model: a built functional or sequential Keras model, typically with masks installed
        (:func:`sparse_keras.sparsity.masking.install_masks`); it is not modified until :meth:`write_back`.
      tau, scheme: as for :func:`~sparse_keras.shrinking.shrink.shrink` (what counts as removed).

    Raises:
      UnmappableShrink: a weight of the shrunk model is not its original's entries at the kept channels.

    Build it inside the ``tf.distribute`` strategy's scope that trains it.
    """

    def __init__(self, model, tau=0.0, scheme=None):
        self.model = model
        # One conv per learned kernel size ("grouped") or a measured choice would rebuild layers under new
        # names; "masked" keeps each layer a slice of its original.
        self.shrunk, builder = build_shrunk(
            model, tau, scheme, mixed_sizes="masked", channel_multiple=None, measure_batch=16, name=None, exact=True)
        self._pairs = _pair_weights(model, self.shrunk, builder)
        masks = masking.current_masks(model)
        carried = {}
        for original, copy, index, _ in self._pairs:
            mask = masks.get(original.path)
            if mask is not None:
                sliced = np.broadcast_to(mask, tuple(original.shape))[index]
                if not sliced.all():
                    carried[copy.path] = sliced
        if carried:
            masking.install_masks(self.shrunk, carried)

    def write_back(self):
        """Writes the shrunk model's current weights into the original's kept entries (the removed entries
        are left as they are: zero, or the fixed weights of a constant channel)."""
        for original, copy, index, shift in self._pairs:
            value = np.array(keras.ops.convert_to_numpy(original))
            value[index] = keras.ops.convert_to_numpy(copy) - shift
            original.assign(value)


def _pair_weights(model, shrunk, builder):
    """``[(original variable, shrunk variable, index, shift)]`` with ``shrunk == original[index] + shift``."""
    nodes = {}
    for node in builder.plan.nodes:
        nodes.setdefault(id(node.operation), []).append(node)
    pairs = []
    for layer in shrunk.layers:
        if not layer.weights:
            continue
        try:
            original = model.get_layer(layer.name)
        except ValueError:
            raise UnmappableShrink(f"layer {layer.name!r} of the shrunk model has no original in {model.name!r}") from None
        calls = nodes.get(id(original), [])
        if len(calls) != 1 or len(calls[0].input_tensors) != 1:
            raise UnmappableShrink(f"layer {layer.name!r} is called {len(calls)} times or on several inputs")
        node = calls[0]
        orders = []
        for tensor in (node.input_tensors[0], node.output_tensors[0]):
            found = builder.input(tensor)
            orders.append(None if found is None else np.asarray(found[1]))
        originals = {w.name: w for w in original.weights}
        copies = {w.name: w for w in layer.weights}
        if set(originals) != set(copies):
            raise UnmappableShrink(f"layer {layer.name!r} has weights {sorted(copies)} in the shrunk model and "
                                   f"{sorted(originals)} in {model.name!r}")
        for name, copy in copies.items():
            pairs.append(_pair(layer.name, originals[name], copy, *orders))
    return pairs


def _pair(layer_name, original, copy, inputs, outputs):
    value = np.asarray(keras.ops.convert_to_numpy(original))
    target = np.asarray(keras.ops.convert_to_numpy(copy))
    axes = [np.arange(n) for n in value.shape]
    if value.ndim >= 1 and outputs is not None and target.shape[-1] != value.shape[-1]:
        axes[-1] = outputs
    if value.ndim >= 2 and inputs is not None and target.shape[-2] != value.shape[-2]:
        axes[-2] = inputs
    if tuple(len(a) for a in axes) != target.shape:
        raise UnmappableShrink(f"{layer_name}/{original.name}: shape {target.shape} in the shrunk model is not a "
                               f"channel selection of {value.shape}")
    index = np.ix_(*axes)
    selected = value[index]
    if np.array_equal(selected, target):
        return original, copy, index, 0.0
    if value.ndim == 1 and original.name in SHIFTABLE:
        return original, copy, index, target - selected
    raise UnmappableShrink(f"{layer_name}/{original.name}: the shrunk model's values are not the original's at "
                           "the kept channels (rebuilt in another form)")

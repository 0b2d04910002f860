"""Random structured zeros: what a sparsified model looks like, without training one.

For tests (outputs of the shrunk model must equal the original's) and for the speed benchmark, whose
speedups depend on how much structure is gone, not on how it was learned.
"""

import keras
import numpy as np

from sparse_keras.inspection import graph, kernels
from sparse_keras.ops import groups


def zero_structures(model, channel_fraction=0.5, shrink_fraction=0.0, scheme="half_ring", seed=0, where=None):
    """Zeroes random output kernels (and their biases) and crops random kernels to smaller nested sizes.

    Args:
      model: a built Keras model; modified in place.
      channel_fraction: probability that an output kernel of a selected layer becomes zero.
      shrink_fraction: probability that a surviving square kernel loses its outer ``m`` nested groups of
        ``scheme`` (``m`` uniform in ``1 .. n_groups - 1``); all kernels of one layer lose the same ``m``
        half the time and independent ones otherwise, so layers with one and with mixed sizes both appear.
      scheme: ``"half_ring"`` or ``"ring"``.
      seed: random seed.
      where: layers as in :func:`sparse_keras.regularize` (default every kernel but the classifier).

    A BatchNormalization reading a zeroed channel directly gets zero ``beta`` and ``moving_mean`` there, as
    after fine-tuning with the channel held at zero (its running mean decays to 0) and weight decay on beta;
    that makes the channel a zero constant that shrinking can drop through 'same' convs too.

    Returns:
      ``{layer name: boolean mask of zeroed output channels}``.
    """
    rng = np.random.default_rng(seed)
    slots, _ = kernels.select_slots(model, where, exclude_classifier=True)
    dead = {}
    for slot in slots:
        value = np.array(keras.ops.convert_to_numpy(slot.variable))
        kernel = value.reshape(groups.canonical_shape(value.shape, slot.layout))
        zero = rng.random(kernel.shape[-1]) < channel_fraction
        if kernel.ndim == 4 and kernel.shape[0] == kernel.shape[1] > 1 and shrink_fraction > 0:
            kernel = _crop_randomly(kernel, ~zero, shrink_fraction, scheme, rng)
        kernel[..., zero] = 0
        slot.variable.assign(kernel.reshape(value.shape))
        if slot is kernels.kernel_slots(slot.layer)[-1]:  # the bias belongs to a layer's last kernel
            bias = getattr(slot.layer, "bias", None)
            if bias is not None:
                bias.assign(np.where(zero, 0, keras.ops.convert_to_numpy(bias)))
            dead[slot.layer.name] = zero
    _zero_following_batch_norms(model, dead)
    return dead


def _crop_randomly(kernel, alive, fraction, scheme, rng):
    masks = groups.nested_masks(scheme, kernel.shape[0])
    n_groups = len(masks)
    if n_groups < 2:
        return kernel
    shared = rng.random() < 0.5
    common = rng.integers(1, n_groups)
    for j in np.flatnonzero(alive & (rng.random(kernel.shape[-1]) < fraction)):
        m = common if shared else rng.integers(1, n_groups)
        kernel[masks[m - 1], :, j] = 0
    return kernel


def _zero_following_batch_norms(model, dead):
    for node in graph.nodes_in_order(model):
        layer = node.operation
        if not isinstance(layer, keras.layers.BatchNormalization) or not node.input_tensors:
            continue
        producer = node.input_tensors[0]._keras_history.operation
        zero = dead.get(getattr(producer, "name", None))
        if zero is None or len(zero) != layer.moving_mean.shape[-1]:
            continue
        for variable in (layer.beta, layer.moving_mean):
            if variable is not None:
                variable.assign(np.where(zero, 0, keras.ops.convert_to_numpy(variable)))

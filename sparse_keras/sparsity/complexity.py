"""Omega_3 (the structured-sparsity paper eq. 34): the group lassos weighted by what each layer's kernels cost in multiply-adds.

Eq. 10 counts ``sum_i sum_j r_i c_i d_{i-1} s_ij^2`` multiply-adds, so a kernel of layer ``i`` costs
``r_i c_i d_{i-1}`` per unit of squared size. Omega_1 and Omega_2 penalise every kernel alike; eq. 34
substitutes the relaxed counts into eq. 10 instead:

    Omega_3 = sum_i sum_j  r_i c_i d'_{i-1} (s'_ij)^2

We apply it through the existing regularizers' ``strength``, one copy per layer, so nothing new enters
the training step and models save and load as before:

* a nested-ring term (Omega_2) of layer i gets strength ``alpha * w_i`` with ``w_i = r_i c_i d_{i-1}`` and
  ``squared=True``, which is exactly ``alpha * w_i * sum_j (s'_ij)^2`` (eq. 33 weighted: eq. 34);
* a kernel-number term (Omega_1) gets ``alpha * w_i * s_hat_i^2``: each whole kernel is charged its
  multiply-adds (eq. 10 with ``s_ij = s_hat_i``); it stays a plain sum of norms so it still zeroes kernels.

``d_{i-1}`` is taken as a constant when the weights are applied: the number of input channels still fed
at threshold ``tau`` (the base width at the start of training). Holding the relaxed ``d'_{i-1}`` fixed
keeps each layer's penalty a separable group lasso (no cross-layer gradient, no units of a kernel norm in
a channel count) (our reading of eq. 34; the draft gives no training details). The weights are
divided by their mean over the regularized layers (``normalize=True``) so that one ``alpha`` means about
the same total pull as for the unweighted regularizers and grids can be shared.
"""

import numpy as np

from sparse_keras import regularizers as regularizers_lib
from sparse_keras.inspection import architecture, kernels
from sparse_keras.sparsity import attach
from sparse_keras.utils import tracing


def layer_costs(model, tau=0.0):
    """``{layer name: r_i c_i d_{i-1}}`` for every square conv kernel of ``model`` (eq. 10's factor).

    ``r_i c_i`` is the number of output positions and ``d_{i-1}`` the input channels still alive at ``tau``
    (followed through the graph by :func:`sparse_keras.inspection.architecture.report`).
    """
    costs = {}
    for row in architecture.report(model, tau=tau).layers:
        if row.base_size is None or len(row.kernel_shape) != 4:
            continue
        per_input = row.base_macs // max(row.base_inputs * row.base_size**2 * row.base_width, 1)  # r_i c_i
        costs[row.layer] = float(per_input * row.inputs)
    return costs


def complexity_weights(model, tau=0.0, normalize=True):
    """Per-layer multipliers of eq. 34, ``{layer name: {"size": w_i, "kernel": w_i * s_hat_i^2}}``.

    Only the layers that carry a sparse_keras group lasso count (the classifier never does). With
    ``normalize`` each kind of weight is divided by its mean over those layers.
    """
    costs = layer_costs(model, tau)
    weights = {}
    for slot in kernels.model_kernel_slots(model):
        name = slot.layer.name
        if name not in costs or not regularizers_lib.group_lassos_in(slot.variable.regularizer):
            continue
        side = slot.shape[0]
        weights[name] = {"size": costs[name], "kernel": costs[name] * side * side}
    if normalize and weights:
        for kind in ("size", "kernel"):
            mean = float(np.mean([w[kind] for w in weights.values()]))
            for w in weights.values():
                w[kind] = w[kind] / mean if mean > 0 else 1.0
    return weights


def apply_weights(model, weights, squared_sizes=True):
    """Multiplies the strength of every group lasso on ``model`` by its layer's weight, in place.

    Call it right after :func:`sparse_keras.regularize` attached the plain strengths (it multiplies what
    is there, so calling it twice compounds; :func:`regularize_by_complexity` does both steps).
    Layers absent from ``weights`` are left as they are. Returns ``model``.
    """
    for slot in kernels.model_kernel_slots(model):
        layer_weights = weights.get(slot.layer.name)
        terms = regularizers_lib.terms_of(slot.variable.regularizer)
        if layer_weights is None or not any(isinstance(t, regularizers_lib.GroupLasso) for t in terms):
            continue
        weighted = [_weighted(t, layer_weights, squared_sizes) for t in terms]
        attach.set_regularizer(slot, weighted[0] if len(weighted) == 1 else regularizers_lib.SumOfRegularizers(weighted))
    tracing.retrace(model)
    return model


def regularize_by_complexity(model, regularizer, tau=0.0, normalize=True, squared_sizes=True, **kwargs):
    """Omega_3: :func:`sparse_keras.regularize` with ``regularizer`` (strength alpha), then each layer's
    group lassos weighted by :func:`complexity_weights`. Idempotent. Returns ``model``."""
    attach.regularize(model, regularizer, **kwargs)
    return apply_weights(model, complexity_weights(model, tau, normalize), squared_sizes)


def _weighted(term, layer_weights, squared_sizes):
    if not isinstance(term, regularizers_lib.GroupLasso):
        return term  # weight decay and other terms keep their strength
    config = term.get_config()
    if term.scheme in ("half_ring", "ring"):
        config["strength"] = term.strength * layer_weights["size"]
        config["squared"] = bool(squared_sizes) or term.squared
    else:
        config["strength"] = term.strength * layer_weights["kernel"]
    return type(term).from_config(config)


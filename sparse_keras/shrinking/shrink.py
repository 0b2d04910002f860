"""``shrink(model)``: the learned sparse model as a smaller dense Keras model with identical outputs.

Steps: zero what is below ``tau`` (on copies, the model is not touched), decide per tensor which channels
survive (:mod:`~sparse_keras.shrinking.plan`), then walk the graph in execution order and rebuild every
layer that a kept output needs with its handler (:mod:`~sparse_keras.shrinking.registry`). Layers no output
needs (a residual branch whose every kernel is zero) are simply not rebuilt.
"""

import math
import numbers
import warnings

import keras
import numpy as np

from sparse_keras import regularizers as regularizers_lib
from sparse_keras.ops import groups
from sparse_keras.shrinking import coverage
from sparse_keras.shrinking import elementwise  # noqa: F401  (registers keras.ops arithmetic)
from sparse_keras.shrinking import keras_layers  # noqa: F401  (registers the built-in handlers)
from sparse_keras.shrinking import kernel_layers  # noqa: F401
from sparse_keras.shrinking import library_layers  # noqa: F401  (LRSD, CSC, LST)
from sparse_keras.inspection import architecture, kernels
from sparse_keras.ops import survivors
from sparse_keras.shrinking import plan as plan_lib
from sparse_keras.utils import timing

MIXED_SIZES = ("auto", "grouped", "masked")


def shrink(
    model, tau=0.0, scheme=None, mixed_sizes="auto", channel_multiple=None, measure_batch=16, name=None, exact=True, warn=True
):
    """Returns a new, physically smaller Keras model computing what ``model`` computes in inference mode.

    Args:
      model: a built functional or sequential Keras model (it is not modified).
      tau: groups with l2 norm ``<= tau`` count as zero, as in :func:`sparse_keras.prune.threshold` (the
        classifier is only trimmed of exact zeros); the result equals the model thresholded at ``tau``.
      scheme: ``"half_ring"``, ``"ring"``, ``"filter"`` or ``"kernel"`` groups to threshold in every kernel;
        ``None`` uses the group lassos attached to each kernel. Exact zeros are always used.
      mixed_sizes: how a conv whose kernels learned different sizes is deployed: ``"grouped"`` (one conv
        per size, concatenated; only where the readers accept any channel order), ``"masked"`` (one conv of
        the largest size), or ``"auto"``: whichever runs faster, measured at ``measure_batch``.
      channel_multiple: if set (e.g. 8), kernel layers keep a multiple of this many channels, adding back
        zero channels (which stay exact) where needed; hardware computes in such steps.
      measure_batch: batch size of the ``"auto"`` timing.
      name: name of the new model; defaults to ``<model.name>_shrunk``.
      exact: ``True`` keeps a constant channel (a zero kernel whose BatchNormalization shift is not 0) that a
        reader cannot absorb exactly ('same'-padded convs larger than 1x1); ``False`` removes it anyway and
        folds the constant into the reader's bias as if there were no zero border (approximate: outputs
        change near the borders; fine-tune afterwards, as after any pruning).
      warn: warn when shrink keeps channels whose kernels :func:`sparse_keras.analysis.report` counts as
        removed, and say why (a coupled channel some other layer still computes, or a constant that cannot
        be absorbed exactly).

    Returns:
      A ``keras.Model``: outputs equal to ``model``'s (float32 round-off; with ``exact=False`` only away from
      borders), layers keep their names.

    Warns (``UserWarning``) naming every layer with a kernel that it keeps whole for want of a rule for its
    kind (Conv1D, Conv3D, grouped convs, ...): see :func:`~sparse_keras.shrinking.coverage.kept_whole`.
    """
    tau = float(tau)
    if not math.isfinite(tau) or tau < 0:
        raise ValueError(f"tau must be a finite non-negative float, got tau={tau!r}")
    if scheme is not None:
        survivors.check_scheme(scheme)
    if mixed_sizes not in MIXED_SIZES:
        raise ValueError(f"mixed_sizes must be one of {MIXED_SIZES}, got mixed_sizes={mixed_sizes!r}")
    for arg, value in (("channel_multiple", channel_multiple), ("measure_batch", measure_batch)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1):
            raise ValueError(f"{arg} must be a positive integer{' or None' if arg == 'channel_multiple' else ''}, got {arg}={value!r}")
    if not model.built:
        raise ValueError(f"Model {model.name!r} is not built; call it on data or build(input_shape) first")
    coverage.warn_kept_whole(model)
    shrunk, builder = build_shrunk(model, tau, scheme, mixed_sizes, channel_multiple, measure_batch, name, exact)
    if warn and not channel_multiple:
        message = explain_kept(builder.plan, tau, scheme)
        if message:
            warnings.warn(message, stacklevel=2)
    return shrunk


def build_shrunk(model, tau, scheme, mixed_sizes, channel_multiple, measure_batch, name, exact):
    """:func:`shrink` without its checks and warnings; returns the shrunk model and the :class:`Builder`
    that made it (which original channels each new tensor holds: :meth:`Builder.input`)."""
    weights = effective_weights(model, tau, scheme)
    plan = plan_lib.Plan(model, lambda layer: weights[id(layer)], channel_multiple, exact=exact)
    builder = Builder(plan, mixed_sizes, measure_batch)
    return builder.build(name or f"{model.name}_shrunk"), builder


def explain_kept(plan, tau=0.0, scheme=None):
    """Why shrink keeps output channels whose kernels :func:`sparse_keras.analysis.report` counts as removed
    (so the report's multiply-adds and parameters are lower than what shrink delivers); ``None`` if it
    keeps none."""
    predicted = {r.layer: r.width for r in architecture.report(plan.model, tau=tau, scheme=scheme).layers}
    roots = plan._uf.roots()
    varies = np.zeros(plan.total, bool)
    for tensor in plan.tensors():
        varies[roots[plan.ids(tensor)]] |= np.isnan(plan.const(tensor))
    coupled, constant = {}, {}
    for node in plan.nodes:
        layer = node.operation
        if not plan.handler(node).is_kernel or layer.name not in predicted:
            continue
        out = node.output_tensors[0]
        extra = len(plan.kept(out)) - predicted[layer.name]
        if extra <= 0:
            continue
        kept_constant = plan.kept(out)[~np.isnan(plan.const(out)[plan.kept(out)])]
        tied = int(varies[roots[plan.ids(out)[kept_constant]]].sum())
        if tied:
            coupled[layer.name] = tied
        if len(kept_constant) - tied:
            constant[layer.name] = len(kept_constant) - tied
    if not coupled and not constant:
        return None
    parts = [f"shrink keeps channels of {plan.model.name!r} that analysis.report counts as removed, so the report's "
             "parameter and multiply-add figures are lower than what the shrunk model has."]
    if coupled:
        parts.append(
            f"Coupled with channels other layers still compute ({_listing(coupled)}): e.g. a zero depthwise kernel "
            "whose input the previous conv still produces; sparsify coupled groups (sparse_keras.structure, "
            "regularizers.CoupledGroupLasso) so that whole groups reach zero."
        )
    if constant:
        parts.append(
            f"Constant channels a reader cannot absorb exactly ({_listing(constant)}): a zero kernel whose "
            "BatchNormalization shift is not 0 feeds a 'same'-padded conv; pass exact=False to remove them "
            "approximately, or zero whole coupled groups (BatchNormalization included)."
        )
    return " ".join(parts)


def _listing(counts, limit=6):
    items = sorted(counts.items(), key=lambda item: -item[1])
    shown = ", ".join(f"{name}: {n}" for name, n in items[:limit])
    return shown + (f" and {len(items) - limit} more layers" if len(items) > limit else "")


def effective_weights(model, tau, scheme=None):
    """``{id(layer): {attribute: numpy array}}`` of every kernel layer, with the groups at or below ``tau``
    zeroed in the kernels :func:`sparse_keras.prune.threshold` would threshold (classifier excluded)."""
    thresholded = {id(s.variable) for s in kernels.select_slots(model, None, exclude_classifier=True)[0]}
    result = {}
    for slot in kernels.model_kernel_slots(model):
        value = np.asarray(keras.ops.convert_to_numpy(slot.variable), "float32")
        if id(slot.variable) in thresholded:
            value = _threshold(slot, value, tau, scheme)
        entry = result.setdefault(id(slot.layer), {})
        entry[slot.weight_attr] = value
        bias = getattr(slot.layer, "bias", None)
        if bias is not None:
            entry["bias"] = np.asarray(keras.ops.convert_to_numpy(bias), "float32")
    return result


def _threshold(slot, value, tau, scheme):
    shape = groups.canonical_shape(value.shape, slot.layout)
    kernel = value.reshape(shape)
    # Whole output kernels in numpy (the common case, and free of a compilation per shape on JAX).
    norms = np.sqrt(np.square(kernel, dtype="float64").sum(axis=tuple(range(kernel.ndim - 1))))
    kernel = kernel * (norms > tau)
    wanted = [scheme] if scheme else [r.scheme for r in regularizers_lib.group_lassos_in(slot.variable.regularizer)]
    square = len(shape) == 4 and shape[0] == shape[1]
    for name in wanted:
        if name != "kernel" and (name not in groups.NESTED_SCHEMES or square):
            kernel = kernel * survivors.keep_mask(kernel, tau, name)
    return kernel.reshape(value.shape).astype("float32")


class Builder:
    """Rebuilds the needed nodes of a :class:`~sparse_keras.shrinking.plan.Plan` in execution order.

    Handlers call :meth:`input` for the new tensor of an original one (``None`` if none of its channels
    is kept) with the original channel held by each new channel.
    """

    def __init__(self, plan, mixed_sizes="auto", measure_batch=16):
        self.plan = plan
        self.mixed_sizes = mixed_sizes
        self.measure_batch = measure_batch
        self.choices = {}  # layer name -> (form, {form: seconds}) of measured choices
        self._values = {}

    def build(self, name):
        model = self.plan.model
        inputs = []
        for tensor in model.inputs:
            layer = tensor._keras_history.operation
            new = keras.Input(shape=tensor.shape[1:], batch_size=tensor.shape[0], dtype=tensor.dtype, name=layer.name)
            self._values[id(tensor)] = (new, np.arange(self.plan.channels(tensor)))
            inputs.append(new)
        for node in self._needed_nodes():
            results = self.plan.handler(node).rebuild(node, self)
            for tensor, (value, order) in zip(node.output_tensors, results):
                self._values[id(tensor)] = None if value is None else (value, np.asarray(order))
        outputs = [self.full_input(t, "the model output") for t in model.outputs]
        outputs = outputs[0] if len(outputs) == 1 else outputs
        shrunk = keras.Model(inputs if len(inputs) > 1 else inputs[0], outputs, name=name)
        shrunk.shrink_choices = dict(self.choices)
        return shrunk

    def _needed_nodes(self):
        plan, needed = self.plan, set()
        for node in reversed(plan.nodes):
            for tensor in node.output_tensors:
                if not len(plan.kept(tensor)):
                    continue
                readers = [(n, p) for n, p in plan.consumers(tensor) if id(n) in needed and not plan.detached(n, p)]
                if plan.is_output(tensor) or readers:
                    needed.add(id(node))
        return [n for n in plan.nodes if id(n) in needed]

    def input(self, tensor):
        """``(new tensor, order)`` for an original tensor, or ``None`` if none of its channels is kept."""
        return self._values.get(id(tensor))

    def full_input(self, tensor, reader):
        """The new tensor for ``tensor`` with every channel in the original order (for layers shrink does not
        understand, and for the model's outputs)."""
        found = self.input(tensor)
        width = self.plan.channels(tensor)
        if found is None or not np.array_equal(found[1], np.arange(width)):
            raise AssertionError(f"{getattr(reader, 'name', reader)} needs all {width} channels of {tensor.name} in order")
        return found[0]

    @staticmethod
    def clone(layer, **overrides):
        """A fresh layer with ``layer``'s config (and ``overrides``); weights are the caller's business."""
        return type(layer).from_config({**layer.get_config(), **overrides})

    def choose_form(self, layer_name, forms, x):
        """Applies one of ``forms`` (``{name: fn(x) -> (tensor, positions)}``) to ``x``: the one asked for,
        or with ``mixed_sizes="auto"`` the fastest, timed on its own at ``measure_batch``."""
        if len(forms) == 1:
            return next(iter(forms.values()))(x)
        if self.mixed_sizes in forms:
            return forms[self.mixed_sizes](x)
        timings = {}
        for form, fn in forms.items():
            probe_input = keras.Input(shape=x.shape[1:], dtype=x.dtype)
            probe = keras.Model(probe_input, fn(probe_input)[0])
            timings[form] = timing.keras_seconds(probe, (self.measure_batch, *x.shape[1:]))
        best = min(timings, key=timings.get)
        self.choices[layer_name] = (best, timings)
        return forms[best](x)

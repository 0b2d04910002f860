"""Coupled channel groups: every weight slice that goes with one channel, across the whole model.

A channel of a conv's output is produced by the conv's kernel slice and bias, normalised by a
BatchNormalization's gamma/beta/mean/variance, read by a depthwise conv (whose output channel is tied to it),
added to other branches' channels by an ``Add``, gated by a squeeze-and-excitation ``Multiply``, and read
by the next convs' kernel input slices. Pruning it means removing all of these together; training it to
zero means penalising all of them together. :func:`coupled_groups` finds these groups with the same
union-find over (tensor, channel) that :func:`sparse_keras.shrink` uses (the ties are each layer
handler's ``couple``, the slices its ``weight_slices``), so what the groups say and what shrink removes
cannot disagree: zero every slice of a prunable group and ``shrink`` removes it exactly.

This is the dependency graph of Torch-Pruning (Fang et al. 2023), for Keras 3 functional models.
"""

import dataclasses
import warnings

import keras
import numpy as np

from sparse_keras.inspection import graph
from sparse_keras.shrinking import elementwise  # noqa: F401  (registers keras.ops arithmetic)
from sparse_keras.shrinking import keras_layers  # noqa: F401  (registers the built-in handlers)
from sparse_keras.shrinking import kernel_layers  # noqa: F401
from sparse_keras.shrinking import library_layers  # noqa: F401
from sparse_keras.shrinking import plan as plan_lib

UNSUPPORTED = ("warn", "raise", "ignore")
_STATISTICS = ("moving_mean", "moving_variance")


@dataclasses.dataclass
class Slice:
    """Indices ``index`` along ``axis`` of ``layer.<attr>`` (seen in shape ``view`` if set) in one group."""

    layer: keras.layers.Layer
    attr: str
    axis: int
    index: np.ndarray
    role: str  # "out" (produces the channel), "in" (reads it) or "norm" (BatchNormalization)
    view: tuple | None = None

    @property
    def variable(self):
        return getattr(self.layer, self.attr)

    @property
    def trainable(self):
        return self.attr not in _STATISTICS

    def shape(self):
        return tuple(self.view) if self.view is not None else tuple(int(d) for d in self.variable.shape)

    def mask(self):
        """0/1 float array in the variable's shape: 1 on this slice."""
        m = np.zeros(tuple(int(d) for d in self.variable.shape), "float32")
        self.fill(m, 1.0)
        return m

    def fill(self, array, value):
        """Sets this slice of ``array`` (a contiguous numpy array in the variable's shape) to ``value``, in
        place: costs the slice's size, where building a :meth:`mask` costs the whole variable's."""
        shape = self.shape()
        view = array.reshape(shape)  # a view of a contiguous array, so the assignment reaches ``array``
        view[(slice(None),) * (self.axis % len(shape)) + (self.index,)] = value

    def values(self, cache=None):
        """The slice as numpy, channels first: ``(len(index), ...)``.

        ``cache``: one dict (``{variable path: numpy value}``, filled here) shared by a loop over many slices,
        so that each variable is read once: reading a whole variable per slice is quadratic in a layer's
        width (minutes for ConvNeXt). Valid while the variables do not change.
        """
        variable = self.variable
        value = None if cache is None else cache.get(variable.path)
        if value is None:
            value = np.asarray(keras.ops.convert_to_numpy(variable))
            if cache is not None:
                cache[variable.path] = value
        value = value.reshape(self.shape())
        return np.moveaxis(value, self.axis % value.ndim, 0)[self.index]

    def size(self):
        shape = self.shape()
        return len(self.index) * int(np.prod(shape)) // shape[self.axis % len(shape)]


@dataclasses.dataclass
class CoupledGroup:
    """Channels that are kept or removed together and the weight slices that go with them.

    ``channels`` is the number of channels of the narrowest producing tensor (what a layer loses);
    ``producers`` names the layers whose output slices create the channels; ``prunable`` is False with a
    ``reason`` when a model input or output, or a layer shrink cannot narrow, holds one of its channels.
    """

    id: int
    slices: list
    members: dict  # tensor name -> channel indices of that tensor in the group
    prunable: bool
    reason: str | None

    @property
    def producers(self):
        return tuple(sorted({s.layer.name for s in self.slices if s.role == "out"}))

    @property
    def layers(self):
        return tuple(sorted({s.layer.name for s in self.slices}))

    def size(self, trainable_only=True):
        """Number of weights in the group (trainable ones: the ones a penalty sees)."""
        return sum(s.size() for s in self.slices if s.trainable or not trainable_only)

    def sq_norm(self, roles=("out", "in", "norm"), cache=None):
        """Squared l2 norm of the group's trainable slices with the given roles (numpy float). ``cache``: as in
        :meth:`Slice.values`, one dict for a loop over many groups."""
        slices = (s for s in self.slices if s.trainable and s.role in roles)
        return float(sum(np.square(s.values(cache), dtype="float64").sum() for s in slices))

    def values_of(self, attr_role, cache=None):
        """Values of the slices selected by ``(attr, role)``, flattened (e.g. ``("gamma", "norm")``)."""
        attr, role = attr_role
        parts = [s.values(cache).ravel() for s in self.slices if s.attr == attr and s.role == role]
        return np.concatenate(parts) if parts else np.zeros(0)

    def is_zero(self, cache=None):
        """Whether every trainable slice is exactly zero (BatchNormalization's gamma and beta included)."""
        return all(not np.any(s.values(cache)) for s in self.slices if s.trainable)

    def __repr__(self):
        state = "prunable" if self.prunable else f"not prunable: {self.reason}"
        return f"CoupledGroup(id={self.id}, producers={self.producers}, slices={len(self.slices)}, {state})"


class CoupledGroups(list):
    """The list of :class:`CoupledGroup` of a model, with the :class:`~sparse_keras.shrinking.plan.Coupling`
    they come from and the layers that could not be followed (``unsupported``: name -> reason)."""

    def __init__(self, groups, coupling, unsupported):
        super().__init__(groups)
        self.coupling = coupling
        self.unsupported = unsupported

    @property
    def prunable(self):
        return [g for g in self if g.prunable]

    def by_producer(self):
        """``{producer layer names: [group, ...]}`` of the prunable groups: channels of one layer."""
        families = {}
        for g in self.prunable:
            families.setdefault(g.producers, []).append(g)
        return families


def coupled_groups(model, unsupported="warn"):
    """The coupled channel groups of a built functional or Sequential Keras model.

    Args:
      model: a built ``keras.Model`` with a functional graph (``keras.applications`` models, Sequential
        models with an input shape). Subclassed models have no graph to follow: rebuild them functionally.
      unsupported: what to do about layers shrink cannot narrow (their channels are marked not prunable):
        ``"warn"`` (one warning listing them), ``"raise"`` (a ``ValueError`` naming them) or ``"ignore"``.

    Returns:
      :class:`CoupledGroups`, a list of :class:`CoupledGroup` (only groups holding at least one weight).
    """
    if unsupported not in UNSUPPORTED:
        raise ValueError(f"unsupported must be one of {UNSUPPORTED}, got unsupported={unsupported!r}")
    if not model.built:
        raise ValueError(f"Model {model.name!r} is not built; call it on data or build(input_shape) first")
    if graph._graph_of(model) is None:
        raise ValueError(
            f"Model {model.name!r} is a subclassed {type(model).__name__} with no functional graph to trace; "
            "coupled groups need the graph: build the same layers with the functional API "
            "(keras.Input -> layers -> keras.Model(inputs, outputs)) or a keras.Sequential with an Input"
        )
    coupling = plan_lib.Coupling(model)
    roots = coupling._uf.roots()
    blocked = {}  # root -> reason
    reasons = {}  # layer name -> reason, for the unsupported report
    entries = []  # (node, SliceSpec)

    def block(tensor, reason):
        for r in np.unique(roots[coupling.ids(tensor)]):
            blocked.setdefault(int(r), reason)

    for tensor in model.inputs:
        block(tensor, f"holds channels of the model input {tensor.name!r}")
    for tensor in model.outputs:
        block(tensor, f"holds channels of the model output {tensor.name!r}")
    for node in coupling.nodes:
        handler = coupling.handler(node)
        specs = handler.weight_slices(node, coupling)
        reason = handler.blocking_reason(node)
        if reason is None and specs is None:
            layer = node.operation
            reason = f"{type(layer).__name__} {layer.name!r}: its shrink handler does not list its weight slices"
        if reason is not None:
            reasons[node.operation.name] = reason
            for tensor in [*node.input_tensors, *node.output_tensors]:
                block(tensor, reason)
            continue
        entries.extend((node, spec) for spec in specs)
    _report_unsupported(model, reasons, unsupported)
    return CoupledGroups(_collect(coupling, roots, entries, blocked), coupling, reasons)


def _by_root(channel_roots):
    """``[(root, sorted channel indices holding it)]`` for one tensor's channel roots, in one sort (a scan
    per root would be quadratic in the tensor's width)."""
    order = np.argsort(channel_roots, kind="stable")
    unique, starts = np.unique(channel_roots[order], return_index=True)
    return zip(unique.tolist(), np.split(order, starts[1:]))


def _collect(coupling, roots, entries, blocked):
    slices = {}  # root -> [Slice]
    for node, spec in entries:
        for root, index in _by_root(roots[coupling.ids(spec.tensor)]):
            slices.setdefault(root, []).append(Slice(node.operation, spec.attr, spec.axis, index, spec.role, spec.view))
    members = {}
    for tensor in coupling.tensors():
        for root, index in _by_root(roots[coupling.ids(tensor)]):
            if root in slices:
                members.setdefault(root, {})[tensor.name] = index
    groups = []
    for root in sorted(slices):
        parts = slices[root]
        reason = blocked.get(root)
        if reason is None and not any(s.role == "out" for s in parts):
            reason = "no layer with weights produces these channels"
        groups.append(CoupledGroup(len(groups), parts, members.get(root, {}), reason is None, reason))
    return groups


def _report_unsupported(model, reasons, mode):
    if not reasons or mode == "ignore":
        return
    listed = "; ".join(f"{name}: {why}" for name, why in sorted(reasons.items()))
    message = f"Model {model.name!r}: the channels read or written by these layers are not prunable: {listed}"
    if mode == "raise":
        raise ValueError(message)
    warnings.warn(message, stacklevel=3)


def zero_groups(groups, statistics=True):
    """Sets every slice of ``groups`` to zero (BatchNormalization's moving mean too if ``statistics``;
    its moving variance stays), so that :func:`sparse_keras.shrink` removes them exactly. In place.

    Returns ``{variable path: 0/1 keep mask}`` over the touched trainable variables, for masked fine-tuning
    (:func:`sparse_keras.admm.install_masks`).
    """
    # One keep mask per variable, cleared slice by slice in place: a whole-variable mask per slice made this
    # quadratic in a layer's width (minutes for ConvNeXt's 4x-wide Dense layers).
    masks, variables = {}, {}
    for group in groups:
        if not group.prunable:
            raise ValueError(f"Group {group.id} is not prunable ({group.reason}); pass prunable groups only")
        for s in group.slices:
            if s.attr == "moving_variance" or (s.attr == "moving_mean" and not statistics):
                continue
            variable = s.variable
            if variable.path not in masks:
                masks[variable.path] = np.ones(tuple(int(d) for d in variable.shape), "float32")
                variables[variable.path] = variable
            s.fill(masks[variable.path], 0.0)
    for path, keep in masks.items():
        variable = variables[path]
        value = np.asarray(keras.ops.convert_to_numpy(variable))
        variable.assign((value * keep).astype(value.dtype))
    return {p: m for p, m in masks.items() if variables[p].trainable}


def zero_coupled_groups(model, fraction=0.4, seed=0, groups=None):
    """Zeroes a random ``fraction`` of the prunable coupled groups of each layer (every slice: kernels,
    biases, BatchNormalization gamma/beta/mean), at least one group staying per layer; in place.

    ``groups``: the model's :func:`sparse_keras.structure.coupled_groups` if already computed. Returns the
    zeroed groups, which :func:`sparse_keras.shrink` must remove exactly.
    """
    groups = coupled_groups(model, unsupported="ignore") if groups is None else groups
    rng = np.random.default_rng(seed)
    chosen = []
    for family in groups.by_producer().values():
        count = min(int(round(fraction * len(family))), len(family) - 1)
        chosen.extend(family[i] for i in rng.choice(len(family), size=count, replace=False))
    zero_groups(chosen)
    return chosen

"""Pruning to a target: rank coupled channel groups by importance, remove the least important until a
fraction of channels or of multiply-adds is left.

Importance criteria, all computed per :class:`~sparse_keras.structure.CoupledGroup`:

* ``"group_norm"``: l2 norm of every trainable slice of the group divided by ``sqrt(size)`` (the group
  lasso's own measure, so it ranks what coupled group-lasso training pushed down);
* ``"bn_gamma"``: mean ``|gamma|`` of the group's BatchNormalization slices (network slimming, Liu et al.
  2017); groups without a BatchNormalization use ``"magnitude"``;
* ``"magnitude"``: mean ``|w|`` of the kernel slices that produce the channel (L1-norm filter pruning,
  Li et al. 2017).

Layers differ in scale (kernel norms differ by an order of magnitude between layers), so each group's
importance is divided by the mean importance of the groups of the same producing layers before the
global ranking; every layer keeps at least one channel.
"""

import dataclasses

import numpy as np

from sparse_keras.sparsity import coupled as structure

CRITERIA = ("group_norm", "bn_gamma", "magnitude")


def importance(group, criterion="group_norm", cache=None):
    """Un-normalised importance of one coupled group under ``criterion``. ``cache``: one dict shared over
    the groups of a model, so that each variable is read once (:meth:`~sparse_keras.structure.Slice.values`)."""
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}, got criterion={criterion!r}")
    if criterion == "bn_gamma":
        gammas = group.values_of(("gamma", "norm"), cache)
        if len(gammas):
            return float(np.abs(gammas).mean())
        criterion = "magnitude"
    if criterion == "magnitude":
        parts = [s.values(cache).ravel() for s in group.slices if s.role == "out" and s.attr != "bias"]
        return float(np.abs(np.concatenate(parts)).mean()) if parts else 0.0
    return float(np.sqrt(group.sq_norm(cache=cache)) / np.sqrt(max(group.size(), 1)))


def normalized_importances(groups, criterion="group_norm"):
    """``{group id: importance / mean importance of its layer's groups}`` over the prunable groups."""
    result, cache = {}, {}
    for family in groups.by_producer().values():
        values = np.array([importance(g, criterion, cache) for g in family])
        scale = values.mean() if values.mean() > 0 else 1.0
        result.update({g.id: v / scale for g, v in zip(family, values)})
    return result


class MacCounter:
    """Multiply-adds of the kernel layers of a model as channels leave (eq. 10 of the counts in
    :func:`sparse_keras.analysis.report`): ``positions * area * inputs * outputs`` per layer."""

    def __init__(self, coupling):
        self.layers = {}
        for node in coupling.nodes:
            layer = node.operation
            specs = coupling.handler(node).weight_slices(node, coupling)
            if not specs or not coupling.handler(node).is_kernel:
                continue
            out = node.output_tensors[0]
            positions = int(np.prod([d for d in out.shape[1:-1] if d is not None] or [1]))
            kind = type(layer).__name__
            if hasattr(layer, "depthwise_kernel"):  # separable: depthwise on inputs, then pointwise
                kh, kw, channels, mult = layer.depthwise_kernel.shape
                state = dict(inp=channels, out=int(out.shape[-1]), area=kh * kw, mult=mult, positions=positions, kind="separable")
            elif kind.startswith("Depthwise"):
                kh, kw, channels, mult = layer.kernel.shape
                state = dict(inp=channels * mult, out=channels * mult, area=kh * kw, positions=positions, kind="depthwise")
            else:
                shape = layer.kernel.shape
                state = dict(inp=int(shape[-2]), out=int(shape[-1]), area=int(np.prod(shape[:-2])), positions=positions, kind="dense")
            self.layers[layer.name] = state
        self.total = sum(self.macs(n) for n in self.layers)

    def macs(self, name):
        s = self.layers[name]
        if s["kind"] == "depthwise":
            return s["positions"] * s["area"] * s["out"]
        if s["kind"] == "separable":
            return s["positions"] * s["inp"] * s["mult"] * (s["area"] + s["out"])
        return s["positions"] * s["area"] * s["inp"] * s["out"]

    def remove(self, group):
        """Takes ``group``'s channels out of the counts; returns the multiply-adds saved."""
        touched = {}
        for s in group.slices:
            state = self.layers.get(s.layer.name)
            if state is None or s.attr in ("bias",) or s.role == "norm":
                continue
            touched.setdefault(s.layer.name, self.macs(s.layer.name))
            if s.role == "out":
                state["out"] -= len(s.index)
                if state["kind"] == "depthwise":
                    state["inp"] -= len(s.index)
            elif s.attr != "pointwise_kernel":  # a separable conv's input count moves with its depthwise slice
                state["inp"] -= len(s.index)
        saved = sum(before - self.macs(name) for name, before in touched.items())
        self.total -= saved
        return saved


@dataclasses.dataclass
class Selection:
    """What :func:`to_target` removed: the groups, the masks that keep them zero while fine-tuning, and the
    multiply-adds and channels before and after (as the shrunk model will have them)."""

    groups: list
    masks: dict
    macs_before: int
    macs_after: int
    channels_before: int
    channels_after: int


def to_target(model, channels=None, macs=None, criterion="group_norm", groups=None, min_channels=1):
    """Zeroes the least important coupled groups until a target is met; :func:`sparse_keras.shrink` then
    removes them exactly.

    Args:
      model: a built functional or Sequential model (modified in place).
      channels: fraction of the prunable channels to keep (global), or ``{producer layer name: fraction}``
        to keep per layer (layers not named keep everything).
      macs: fraction of the kernel layers' multiply-adds to keep (global ranking, exact accounting of what
        each removed group saves as the layers around it narrow).
      criterion: ``"group_norm"``, ``"bn_gamma"`` (network slimming) or ``"magnitude"`` (L1-norm filter
        pruning, Li et al. 2017); see the module docstring.
      groups: the model's :func:`sparse_keras.structure.coupled_groups`, if already computed.
      min_channels: channels every layer keeps at least.

    Returns:
      A :class:`Selection`; ``selection.masks`` go to :func:`sparse_keras.admm.install_masks` for masked
      fine-tuning.
    """
    if (channels is None) == (macs is None):
        raise ValueError(f"Pass exactly one of channels= or macs=, got channels={channels!r}, macs={macs!r}")
    for name, value in (("channels", channels), ("macs", macs)):
        values = value.values() if isinstance(value, dict) else [] if value is None else [value]
        for v in values:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= 1:
                raise ValueError(f"{name} must be a fraction in (0, 1] to keep (or a dict of them), got {name}={value!r}")
    groups = structure.coupled_groups(model) if groups is None else groups
    scores = normalized_importances(groups, criterion)
    families = groups.by_producer()
    counter = MacCounter(groups.coupling)
    macs_before, channels_before = counter.total, len(groups.prunable)
    chosen = _choose(families, scores, counter, channels, macs, min_channels)
    masks = structure.zero_groups(chosen)
    return Selection(chosen, masks, macs_before, counter.total, channels_before, channels_before - len(chosen))


def _choose(families, scores, counter, channels, macs, min_channels):
    if isinstance(channels, dict):
        unknown = sorted(set(channels) - {n for producers in families for n in producers})
        if unknown:
            raise ValueError(f"channels names layers that produce no prunable channels: {unknown}")
    left = {producers: len(family) for producers, family in families.items()}
    ranked = sorted((g for family in families.values() for g in family), key=lambda g: scores[g.id])
    total = sum(left.values())
    budget = None if macs is None else macs * counter.total
    chosen = []
    for group in ranked:
        family = group.producers
        if left[family] <= min_channels:
            continue
        if isinstance(channels, dict):
            fraction = min((channels[n] for n in family if n in channels), default=None)
            if fraction is None or left[family] <= round(fraction * len(families[family])):
                continue
        elif channels is not None and total - len(chosen) <= round(channels * total):
            break
        elif budget is not None and counter.total <= budget:
            break
        counter.remove(group)
        left[family] -= 1
        chosen.append(group)
    return chosen


def remove(model, groups):
    """Zeroes ``groups`` (coupled groups of ``model``, e.g. picked by hand from
    :func:`sparse_keras.structure.coupled_groups`) so that :func:`sparse_keras.shrink` removes them;
    returns the masks for masked fine-tuning. Approximate: the model's outputs change, as with any pruning."""
    groups = list(groups)
    layers = {id(layer) for layer in model.layers}
    foreign = sorted({s.layer.name for g in groups for s in g.slices if id(s.layer) not in layers})
    if foreign:
        raise ValueError(f"groups hold layers that model {model.name!r} does not have: {foreign}")
    return structure.zero_groups(groups)


def threshold_groups(model, tau=None, relative=None, groups=None):
    """Zeroes every prunable coupled group whose l2 norm (over all its trainable slices) is at most ``tau``,
    or at most ``relative`` times the largest norm among the groups of the same producing layers: the
    thresholding step after coupled group-lasso training. Returns the :class:`Selection`."""
    if (tau is None) == (relative is None):
        raise ValueError(f"Pass exactly one of tau= or relative=, got tau={tau!r}, relative={relative!r}")
    if relative is not None and not (isinstance(relative, (int, float)) and 0 <= relative < 1):
        raise ValueError(f"relative must be a fraction in [0, 1), got relative={relative!r}")
    if tau is not None and not (isinstance(tau, (int, float)) and np.isfinite(tau) and tau >= 0):
        raise ValueError(f"tau must be a finite non-negative float, got tau={tau!r}")
    groups = structure.coupled_groups(model) if groups is None else groups
    counter = MacCounter(groups.coupling)
    before = counter.total
    chosen, cache = [], {}
    for family in groups.by_producer().values():
        norms = np.sqrt([g.sq_norm(cache=cache) for g in family])
        limit = tau if relative is None else relative * norms.max(initial=0.0)
        for group, norm in zip(family, norms):
            if norm <= limit:
                chosen.append(group)
                counter.remove(group)
    masks = structure.zero_groups(chosen)
    return Selection(chosen, masks, before, counter.total, len(groups.prunable), len(groups.prunable) - len(chosen))

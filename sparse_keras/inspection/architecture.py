"""Reading the learned architecture off a sparsified model (the structured-sparsity paper, eq. 10, 11, 15, 20, 23).

:func:`report` gives, per sparsifiable kernel, the learned width ``d_i`` (kernels with norm above tau),
the learned kernel sizes ``s_ij`` under a nested scheme, the input width ``d_{i-1}`` still fed by the
producers (followed through the model's graph), and multiply-adds and parameters before and after.
"""

import dataclasses
import json

import keras
import numpy as np
from keras import ops

from sparse_keras import regularizers as regularizers_lib
from sparse_keras.inspection import graph, kernels
from sparse_keras.ops import groups, survivors
from sparse_keras.utils import state, tables


def kernel_sizes(kernel, tau, scheme="half_ring"):
    """Learned size of each output kernel of a square conv kernel ``(s, s, in, out)`` (eq. 20/23).

    ``half_ring``: ``s - m`` with ``m`` the largest nested group whose norm is ``<= tau`` (0..s, may be
    even); ``ring``: ``s - 2m`` (0, 1, 3, .., s). Returns a numpy int array ``(out,)``.
    """
    if scheme not in groups.NESTED_SCHEMES:
        raise ValueError(f"scheme must be one of {groups.NESTED_SCHEMES}, got scheme={scheme!r}")
    return survivors.kernel_sizes(ops.convert_to_numpy(kernel), tau, scheme)


def layer_width(kernel, tau):
    """Learned width ``d_i`` (eq. 11/15): the number of output kernels with ``||k_j|| > tau``."""
    return int(survivors.alive_kernels(ops.convert_to_numpy(kernel), tau).sum())


@dataclasses.dataclass
class LayerReport:
    """The learned architecture of one kernel; counts are ``learned`` against ``base``."""

    layer: str
    kind: str
    kernel_shape: tuple
    base_width: int
    width: int
    base_inputs: int
    inputs: int
    base_size: int | None  # side of a square conv kernel, else None
    sizes: dict  # learned kernel size -> number of alive kernels of that size
    base_macs: int
    macs: int
    base_params: int
    params: int


@dataclasses.dataclass
class ArchitectureReport:
    """A table of :class:`LayerReport` rows plus model totals, writable as markdown, CSV and JSON."""

    model: str
    tau: float
    layers: list
    total_params: int  # every parameter of the model, trainable or not
    learned_total_params: int

    @property
    def base_macs(self):
        return sum(r.base_macs for r in self.layers)

    @property
    def macs(self):
        return sum(r.macs for r in self.layers)

    def to_dict(self):
        return {
            "model": self.model,
            "tau": self.tau,
            "base_macs": self.base_macs,
            "macs": self.macs,
            "total_params": self.total_params,
            "learned_total_params": self.learned_total_params,
            "layers": [dataclasses.asdict(r) | {"sizes": {str(k): v for k, v in r.sizes.items()}} for r in self.layers],
        }

    def to_markdown(self):
        header = ["layer", "kind", "kernel", "width d_i", "inputs d_(i-1)", "kernel sizes (size: count)", "MACs", "params"]
        rows = [
            [r.layer, r.kind, "x".join(map(str, r.kernel_shape)), f"{r.width}/{r.base_width}", f"{r.inputs}/{r.base_inputs}",
             ", ".join(f"{s}: {n}" for s, n in sorted(r.sizes.items())) or "-", f"{r.macs:,}/{r.base_macs:,}",
             f"{r.params:,}/{r.base_params:,}"]
            for r in self.layers
        ]
        lines = [f"# Learned architecture of `{self.model}` at tau = {self.tau:g}", "", *tables.markdown_lines(header, rows)]
        ratio = self.base_macs / self.macs if self.macs else float("inf")
        lines += [
            "",
            f"Multiply-adds: {self.macs:,} of {self.base_macs:,} ({ratio:.2f}x fewer). "
            f"Parameters: {self.learned_total_params:,} of {self.total_params:,}.",
        ]
        return "\n".join(lines) + "\n"

    def to_csv(self):
        fields = [f.name for f in dataclasses.fields(LayerReport)]
        rows = []
        for r in self.layers:
            row = dataclasses.asdict(r)
            row["kernel_shape"] = "x".join(map(str, r.kernel_shape))
            row["sizes"] = ";".join(f"{s}:{n}" for s, n in sorted(r.sizes.items()))
            rows.append([row[f] for f in fields])
        return tables.csv_text(fields, rows)

    def save(self, prefix):
        """Writes ``prefix.md``, ``prefix.csv`` and ``prefix.json``, each atomically. Returns the paths."""
        return tables.save(prefix, md=self.to_markdown(), csv=self.to_csv(), json=json.dumps(self.to_dict(), indent=2))


def report(model, tau=1e-3, scheme=None, path=None):
    """The learned architecture of ``model`` at threshold ``tau``.

    Args:
      model: a built Keras model.
      tau: groups with l2 norm ``<= tau`` count as removed (the structured-sparsity paper uses 1e-3).
      scheme: ``"half_ring"`` or ``"ring"`` to read kernel sizes of every square conv kernel with that
        scheme; ``None`` uses the nested scheme of the group lasso attached to each kernel, if any (kernels
        without one keep their full size).
      path: if given, the report is also written to ``path.md``, ``path.csv`` and ``path.json``.

    Returns:
      An :class:`ArchitectureReport`.
    """
    tau = float(tau)
    if not np.isfinite(tau) or tau < 0:
        raise ValueError(f"tau must be a finite non-negative float, got tau={tau!r}")
    if scheme is not None and scheme not in groups.NESTED_SCHEMES:
        raise ValueError(f"scheme must be None or one of {groups.NESTED_SCHEMES}, got scheme={scheme!r}")
    if not model.built:
        raise ValueError(f"Model {model.name!r} is not built; call it on data or build(input_shape) first")

    slots_of = {}
    for slot in kernels.model_kernel_slots(model):
        slots_of.setdefault(id(slot.layer), []).append(slot)
    rows = {}

    def emitted(layer, input_mask):
        if id(layer) not in slots_of:
            return None
        out_mask = input_mask
        for slot in slots_of[id(layer)]:
            row, out_mask = _layer_report(slot, out_mask, tau, scheme)
            rows[slot.path] = row
        return out_mask

    inputs_of = graph.propagate_channels(model, emitted)
    layers = []
    for slot in (s for layer_slots in slots_of.values() for s in layer_slots):
        if slot.path not in rows:  # not reached through a graph (e.g. a subclassed model): all inputs alive
            rows[slot.path], _ = _layer_report(slot, None, tau, scheme)
        layers.append(rows[slot.path])
    removed = sum(r.base_params - r.params for r in layers) + _normalization_params_removed(model, inputs_of)
    total = count_params(model)
    result = ArchitectureReport(model.name, tau, layers, total, total - removed)
    if path is not None:
        result.save(path)
    return result


def _normalization_params_removed(model, inputs_of):
    """BatchNormalization weights (gamma, beta, mean, variance) of channels no kernel feeds any more: they
    go with the channel when shrinking."""
    removed = 0
    for layer in kernels.iter_layers(model):
        mask = inputs_of.get(id(layer))
        if not isinstance(layer, keras.layers.BatchNormalization) or mask is None:
            continue
        if len(mask) == layer.moving_mean.shape[-1]:
            removed += int((~mask).sum()) * len(layer.weights)
    return removed


def count_params(model):
    """Parameters of ``model`` (trainable or not), without procedure state such as ADMM's F and Gamma."""
    return int(sum(np.prod(v.shape) for v in model.weights if not state.is_training_state(v)))


def _nested_scheme(slot, scheme, shape):
    if len(shape) != 4 or shape[0] != shape[1]:
        return None
    if scheme is not None:
        return scheme
    attached = [r.scheme for r in regularizers_lib.group_lassos_in(slot.variable.regularizer)]
    return next((s for s in attached if s in groups.NESTED_SCHEMES), None)


def _layer_report(slot, input_mask, tau, scheme):
    """One row of the report, and the channel mask this kernel emits."""
    value = np.asarray(ops.convert_to_numpy(slot.variable), "float32")
    kernel = value.reshape(groups.canonical_shape(value.shape, slot.layout))
    n_in, n_out = kernel.shape[-2], kernel.shape[-1]
    if slot.layout == "depthwise":
        # Depthwise output channel c*mult + m reads input channel c only.
        mult = value.shape[-1]
        feeds = np.ones(value.shape[2], bool) if input_mask is None or len(input_mask) != value.shape[2] else input_mask
        alive_in, inputs, base_inputs = np.repeat(feeds, mult), 1, 1
        alive = survivors.alive_kernels(kernel, tau) & alive_in
    else:
        feeds = input_mask if input_mask is not None and len(input_mask) == n_in else np.ones(n_in, bool)
        inputs, base_inputs = int(feeds.sum()), n_in
        alive = survivors.alive_kernels(kernel[..., feeds, :], tau) if inputs else np.zeros(n_out, bool)

    nested = _nested_scheme(slot, scheme, kernel.shape)
    base_area = int(np.prod(kernel.shape[:-2]))
    if nested is not None:
        learned = survivors.kernel_sizes(kernel, tau, nested)
        areas = np.where(alive, learned**2, 0)
    else:
        learned = np.full(n_out, kernel.shape[0] if kernel.ndim == 4 else 0)
        areas = np.where(alive, base_area, 0)
    square = kernel.ndim == 4 and kernel.shape[0] == kernel.shape[1]
    sizes = {}
    if square:
        for s in learned[alive]:
            sizes[int(s)] = sizes.get(int(s), 0) + 1

    bias = getattr(slot.layer, "bias", None) if slot == _last_slot(slot) else None
    has_bias = bias is not None
    spatial = _output_positions(slot.layer)
    row = LayerReport(
        layer=slot.layer.name,
        kind=type(slot.layer).__name__ + ("" if slot.weight_attr in ("kernel",) else f".{slot.weight_attr}"),
        kernel_shape=tuple(int(d) for d in value.shape),
        base_width=int(n_out),
        width=int(alive.sum()),
        base_inputs=int(base_inputs),
        inputs=int(inputs),
        base_size=int(kernel.shape[0]) if square else None,
        sizes=sizes,
        base_macs=int(spatial * base_inputs * base_area * n_out),
        macs=int(spatial * inputs * areas.sum()),
        base_params=int(base_inputs * base_area * n_out + (n_out if has_bias else 0)),
        params=int(inputs * areas.sum() + (alive.sum() if has_bias else 0)),
    )
    return row, alive


def _last_slot(slot):
    """The bias of a layer belongs to its last kernel (the pointwise one of a separable conv)."""
    return kernels.kernel_slots(slot.layer)[-1]


def _output_positions(layer):
    """Number of output positions (``r_i * c_i`` in eq. 10) of a layer called once in a graph; 1 if unknown."""
    try:
        shape = layer.output.shape
    except (AttributeError, ValueError):
        return 1
    dims = [d for d in shape[1:-1] if d is not None]
    return int(np.prod(dims)) if dims else 1

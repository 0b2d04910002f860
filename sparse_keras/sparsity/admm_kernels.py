"""The pieces of ADMM sparsity training (Kiaee et al. 2016) that hold no schedule: which axes form a block,
the per-kernel variables F and Gamma and the W-step penalty on them, the F-step over coupled channel groups,
and the ``lr * rho`` stability bound of SGD's W-step.

:class:`~sparse_keras.sparsity.admm_algorithm.ADMMAlgorithm` puts them together.
"""

import json
import math

import keras
import numpy as np
from keras import ops

from sparse_keras.ops import groups, proximal
from sparse_keras.utils import files, state

PENALTIES = ("l1", "l0")
BLOCKS = ("filter", "kernel", "element", "coupled")
STOPPING = ("paper", "boyd")


def block_axes(block, rank):
    """Axes of a canonical kernel of ``rank`` that form one block (see :mod:`sparse_keras.ops.proximal`)."""
    if block not in BLOCKS:
        raise ValueError(f"block must be one of {BLOCKS}, got block={block!r}")
    if block == "element":
        return ()
    if block in ("kernel", "coupled") or rank == 2:
        return tuple(range(rank - 1))  # an output kernel; for Dense the paper's block is one output unit
    return tuple(range(rank - 2))  # a filter W_ij: the spatial axes


class ADMMPenalty(keras.regularizers.Regularizer):
    """The W-step term ``rho/2 ||W - (F - Gamma/rho)||^2`` on one kernel (training state, never saved)."""

    def __init__(self, rho, f, gamma):
        self.rho, self.f, self.gamma = float(rho), f, gamma

    def __call__(self, w):
        u = ops.convert_to_tensor(self.f) - ops.convert_to_tensor(self.gamma) / self.rho
        return 0.5 * self.rho * ops.sum(ops.square(ops.cast(w, "float32") - u))

    def get_config(self):
        raise TypeError("ADMMPenalty is training state tied to live variables and is not serializable")


class KernelTarget:
    """One sparsified kernel and its ADMM variables."""

    def __init__(self, slot, block):
        self.slot = slot
        self.canonical_shape = groups.canonical_shape(slot.shape, slot.layout)
        self.axes = block_axes(block, len(self.canonical_shape))
        # A host copy: on JAX, fit donates the model's buffers, which would delete a shared array.
        value = np.array(ops.convert_to_numpy(slot.variable), dtype="float32")
        self.state = state.TrainingState(name=f"admm_{slot.weight_attr}")
        with keras.name_scope(slot.layer.name):  # paths like "conv1/admm_kernel/f", unique per kernel
            self.f = self.state.add_state("f", value)
            self.gamma = self.state.add_state("gamma", np.zeros_like(value))
        self.state.built = True
        self.original_regularizer = slot.variable.regularizer
        self.block_size = int(np.prod([self.canonical_shape[a] for a in self.axes])) if self.axes else 1

    @property
    def path(self):
        return self.slot.path

    @property
    def state_attr(self):
        return f"_sparse_keras_admm_{self.slot.weight_attr}"

    def track(self):
        state.attach(self.slot.layer, self.state_attr, self.state)

    def untrack(self):
        state.detach(self.slot.layer, self.state_attr)

    def canonical(self, x):
        return ops.reshape(x, self.canonical_shape)

    def block_norms(self, x):
        return proximal.block_norms(self.canonical(x), self.axes)


def stability_bound(momentum=0.0, nesterov=False):
    """The largest ``learning_rate * rho`` for which SGD's W-step stays stable.

    The W-step penalty ``rho/2 ||W - U||^2`` has curvature ``rho``; gradient descent with heavy-ball
    momentum ``beta`` is stable on a quadratic of curvature ``h`` only while ``lr h < 2 (1 + beta)``, and
    with Nesterov momentum while ``lr h < 2 (1 + beta) / (1 + 2 beta)``. Beyond it the iterates grow
    geometrically whatever the data loss does.
    """
    momentum = float(momentum)
    if not 0 <= momentum < 1:
        raise ValueError(f"momentum must be in [0, 1), got momentum={momentum!r}")
    bound = 2 * (1 + momentum)
    return bound / (1 + 2 * momentum) if nesterov else bound


def check_stability(learning_rate, rho, momentum=0.0, nesterov=False, names=("learning_rate", "rho", "momentum")):
    """Raises ``ValueError`` if ``learning_rate * rho`` is at or beyond :func:`stability_bound`.

    ``names``: how to call the three values in the message (a config key path, for instance), so that a
    binary can report ``config.optimizer.learning_rate`` rather than the argument name.
    """
    learning_rate, rho = float(learning_rate), float(rho)
    bound = stability_bound(momentum, nesterov)
    if learning_rate * rho >= bound:
        lr_name, rho_name, momentum_name = names
        form = "2 (1 + {m}) / (1 + 2 {m})" if nesterov else "2 (1 + {m})"
        raise ValueError(
            f"{lr_name} * {rho_name} = {learning_rate:g} * {rho:g} = {learning_rate * rho:g} must stay below "
            f"{form.format(m=momentum_name)} = {bound:g} ({momentum_name}={float(momentum):g}): the ADMM W-step "
            f"penalty has curvature {rho_name} and SGD diverges on it beyond that; lower {lr_name} or {rho_name}"
        )


def check_optimizer(optimizer, rho):
    """:func:`check_stability` for a Keras optimizer: plain or momentum SGD is checked at its current
    learning rate; adaptive optimizers (Adam, ...) normalise the step and have no such bound, so they pass.
    """
    if not isinstance(optimizer, keras.optimizers.SGD):
        return
    learning_rate = float(ops.convert_to_numpy(optimizer.learning_rate))
    check_stability(
        learning_rate,
        rho,
        optimizer.momentum,
        optimizer.nesterov,
        names=("optimizer.learning_rate", "rho", "optimizer.momentum"),
    )



def check_finite(path, finite, mu, rho):
    """Raises ``FloatingPointError`` naming which of W, F, Gamma of kernel ``path`` are not finite
    (``finite``: three truth values): nothing computed after a non-finite value would mean anything."""
    bad = [name for name, ok in zip(("weights W", "auxiliary F", "dual Gamma"), finite) if not ok]
    if bad:
        raise FloatingPointError(
            f"ADMM stopped: {' and '.join(bad)} of {path} are not finite (mu={mu:g}, rho={rho:g}, "
            f"mu/rho={mu / rho:g}). Lower mu/rho or the learning rate."
        )


def write_state(path, arrays, meta):
    """Writes ADMM's state (``{name: array}`` and a JSON-able ``meta``) to ``path`` (``.npz``) atomically."""
    with files.atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, __meta__=np.array(json.dumps(meta)), **arrays)


def read_state(path):
    """``(arrays, meta)`` as :func:`write_state` wrote them."""
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["__meta__"]))
        arrays = {k: data[k] for k in data.files if k != "__meta__"}
    return arrays, meta


def segment_targets(targets, coupled_groups):
    """Marks, on each target, the coupled group of each index along its output axis (``segments``, -1 for
    none, with the slice's ``view`` shape and ``out_axis``); returns the first producing layer of each group
    (whose mu the group takes)."""
    by_variable = {id(t.slot.variable): t for t in targets}
    for t in targets:
        t.segments = None
    mu_layers = []
    for position, group in enumerate(coupled_groups):
        layer = None
        for s in group.slices:
            t = by_variable.get(id(s.variable))
            if t is None or s.role != "out" or s.attr == "bias":
                continue
            if t.segments is None:
                shape = s.shape()
                t.view, t.out_axis, t.segments = shape, s.axis % len(shape), np.full(shape[s.axis], -1)
            t.segments[s.index] = position
            layer = layer or t.slot.layer
        mu_layers.append(layer)
    return mu_layers


def converged(stopping, epsilon, rho, n, primal, dual, w_sq_norm, f_sq_norm, gamma_sq_norm):
    """The stopping test of an ADMM iteration on ``n`` weights, from the residual norms ``||W - F||`` and
    ``||F - F_prev||`` and the squared norms of W, F and Gamma.

    ``"paper"``: both residuals at most ``epsilon``. ``"boyd"``: Boyd et al. 2011, section 3.3.1, as the
    authors' code computes it (absolute ``epsilon`` and relative 1e-2 tolerances, dual residual scaled by rho).
    """
    if stopping == "paper":
        return primal <= epsilon and dual <= epsilon
    eps_pri = math.sqrt(n) * epsilon + 1e-2 * max(math.sqrt(w_sq_norm), math.sqrt(f_sq_norm))
    eps_dual = math.sqrt(n) * epsilon + 1e-2 * math.sqrt(gamma_sq_norm)
    return primal < eps_pri and rho * dual < eps_dual


def coupled_prox(targets, coupled_groups, group_mus, rho, penalty, guard):
    """F-step over coupled groups (host numpy): group soft (``"l1"``) or hard (``"l0"``) thresholding of
    ``V = W + Gamma/rho`` with one norm per group over the output slices of every kernel producing it; other
    entries keep ``V``. ``group_mus``: the mu of each group; ``guard`` as :class:`~sparse_keras.admm.ADMM`'s.

    Returns the new F of each target, float32 numpy arrays in the targets' order.
    """
    vs, sq = [], np.zeros(len(coupled_groups) + 1)
    for t in targets:
        v = np.asarray(ops.convert_to_numpy(t.slot.variable), "float64") + np.asarray(ops.convert_to_numpy(t.gamma), "float64") / rho
        vs.append(v)
        if t.segments is not None:
            per = np.square(np.moveaxis(v.reshape(t.view), t.out_axis, -1)).reshape(-1, len(t.segments)).sum(axis=0)
            np.add.at(sq, t.segments, per)  # index -1 lands in the spare last slot
    norms = np.sqrt(sq[:-1])
    mus = np.asarray(group_mus, "float64")
    limits = mus / rho if penalty == "l1" else np.sqrt(2 * mus / rho)
    if guard is not None:
        limits = guard_families(coupled_groups, norms, limits, guard)
    if penalty == "l1":
        scale = np.where(norms > limits, 1 - limits / np.maximum(norms, 1e-30), 0.0)
    else:
        scale = (norms > limits).astype("float64")
    scale = np.append(scale, 1.0)  # entries of no group
    result = []
    for t, v in zip(targets, vs):
        if t.segments is not None:
            moved = np.moveaxis(v.reshape(t.view), t.out_axis, -1) * scale[t.segments]
            v = np.moveaxis(moved, -1, t.out_axis).reshape(v.shape)
        result.append(v.astype("float32"))
    return result


def guard_families(coupled_groups, norms, limits, guard):
    """The over-pruning guard per producing layer set: where more than ``guard`` of its groups would be
    zeroed, the limit becomes the family's mean group norm."""
    families = {}
    for position, group in enumerate(coupled_groups):
        families.setdefault(group.producers, []).append(position)
    limits = limits.copy()
    for members in families.values():
        members = np.asarray(members)
        if (norms[members] <= limits[members]).mean() > guard:
            limits[members] = norms[members].mean()
    return limits


def check_sparsity(sparsity, penalty, block, path):
    """``sparsity`` as given (None, a fraction, or ``{layer name: fraction}``), or ``ValueError`` naming it."""
    if sparsity is None:
        return None
    values = sparsity.items() if isinstance(sparsity, dict) else [(None, sparsity)]
    for name, value in values:
        label = "sparsity" if name is None else f"sparsity[{name!r}]"
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
            raise ValueError(f"{label} must be a fraction of blocks in (0, 1), got {label}={value!r}")
    if penalty != "l0":
        raise ValueError(f"sparsity targets project onto a number of nonzero blocks, an l0 constraint: use "
                         f"penalty='l0' (got penalty={penalty!r})")
    if block == "coupled" or path is not None:
        raise ValueError("sparsity targets work with block='filter', 'kernel' or 'element' and a float mu; for "
                         f"coupled groups use sparse_keras.prune.to_target (got block={block!r}, mu path={path is not None})")
    return dict(sparsity) if isinstance(sparsity, dict) else float(sparsity)

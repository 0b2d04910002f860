"""Structured-sparsity regularizers (the structured-sparsity paper; filter groups of Kiaee et al. 2016).

Each regularizer is a ``keras.regularizers.Regularizer`` that sums a norm over groups of a kernel, the
convex relaxation of a count (a layer's width, a kernel's size) that plain gradient descent can minimise:

* :class:`KernelGroupLasso` — Omega_1 (eq. 12-13), one group per output kernel: learns layer widths.
* :class:`FilterGroupLasso` — one group per 2-D filter ``W_ij`` (per output column for Dense).
* :class:`NestedHalfRing` — Omega_2 (eq. 21-22) with nested half-ring groups: learns kernel sizes 0..s.
* :class:`NestedRing` — Omega_2 with nested full rings: learns sizes 0, 1, 3, .., s.

``norm`` picks the group norm of section 3.3 of the draft: ``"l2"`` is ``||k(G)||``, ``"normalized"`` is
``||k(G)|| / sqrt(|G|)`` and ``"scaled"`` is ``sqrt(|G|) ||k(G)||``. ``squared=True`` squares the relaxed
counts, the complexity-matched variants of eq. 32-33: per layer for kernel and filter counts
(``(sum_j ||k_j||)^2``), per kernel for sizes (``sum_j (sum_n ||k_j(G_n)||)^2``).

All math is ``keras.ops`` in float32, whatever the compute dtype of the model, and the norm's gradient
at an exactly zero group is 0 rather than NaN (see :func:`sparse_keras.ops.groups.safe_sqrt`).
"""

import abc
import math

import keras
import numpy as np
from keras import ops

from sparse_keras.ops import groups

NORMS = ("l2", "normalized", "scaled")


class GroupLasso(keras.regularizers.Regularizer, metaclass=abc.ABCMeta):
    """Base class: ``strength * sum over groups of norm(group)`` on one kernel.

    Subclasses say what a group is (:meth:`group_sq_norms`, :meth:`group_sizes`), how the squared
    variant aggregates (:meth:`_relaxed_counts`) and which sparsity scheme thresholding should use.
    """

    scheme = None  # the name `prune.threshold` and `analysis` use for this grouping

    def __init__(self, strength, norm="l2", squared=False, layout="conv"):
        self.strength = _check_strength(strength)
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got norm={norm!r}")
        if layout not in groups.LAYOUTS:
            raise ValueError(f"layout must be one of {groups.LAYOUTS}, got layout={layout!r}")
        self.norm = norm
        self.squared = bool(squared)
        self.layout = layout

    # -- what a group is -------------------------------------------------------------------------
    @abc.abstractmethod
    def group_sq_norms(self, kernel):
        """Squared l2 norms of the groups of a canonical kernel."""

    @abc.abstractmethod
    def group_sizes(self, shape):
        """``|G|`` for each group along the last axis of :meth:`group_sq_norms` (or a scalar)."""

    def _relaxed_counts(self, norms):
        """What ``squared=True`` squares; by default the whole layer's sum (eq. 32)."""
        return ops.sum(norms)

    def check_shape(self, shape):
        """Raises ``ValueError`` naming ``shape`` if this regularizer cannot group such a kernel."""
        if len(shape) < 2:
            raise ValueError(f"{type(self).__name__} needs a kernel of rank >= 2; got kernel shape {tuple(shape)}")

    def supports(self, shape):
        try:
            self.check_shape(tuple(shape))
        except ValueError:
            return False
        return True

    # -- the penalty -----------------------------------------------------------------------------
    def group_norms(self, kernel):
        """Group norms (with the ``norm`` weighting) of a kernel in this regularizer's ``layout``."""
        kernel = ops.cast(groups.canonical_kernel(kernel, self.layout), "float32")
        self.check_shape(tuple(kernel.shape))
        norms = groups.safe_sqrt(self.group_sq_norms(kernel))
        if self.norm == "l2":
            return norms
        sizes = np.asarray(self.group_sizes(tuple(kernel.shape)), dtype="float32")
        weight = np.sqrt(sizes) if self.norm == "scaled" else 1.0 / np.sqrt(sizes)
        return norms * ops.convert_to_tensor(weight, dtype="float32")

    def __call__(self, x):
        norms = self.group_norms(x)
        if self.squared:
            return self.strength * ops.sum(ops.square(self._relaxed_counts(norms)))
        return self.strength * ops.sum(norms)

    def for_layout(self, layout):
        """A copy of this regularizer for kernels of ``layout`` (``"conv"``, ``"depthwise"``, ``"dense"``)."""
        config = self.get_config()
        config["layout"] = layout
        return type(self).from_config(config)

    def get_config(self):
        return {"strength": self.strength, "norm": self.norm, "squared": self.squared, "layout": self.layout}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


@keras.saving.register_keras_serializable(package="sparse_keras")
class KernelGroupLasso(GroupLasso):
    """Omega_1 (eq. 12-13): ``strength * sum_j ||k_j||`` over the output kernels of a layer.

    Drives whole output channels to zero, so the learned width ``d_i`` (eq. 11) falls below ``d_hat_i``.

    >>> layer = keras.layers.Conv2D(16, 3, kernel_regularizer=KernelGroupLasso(1e-4))
    """

    scheme = "kernel"

    def group_sq_norms(self, kernel):
        return groups.kernel_group_sq_norms(kernel)

    def group_sizes(self, shape):
        return groups.kernel_group_size(shape)


@keras.saving.register_keras_serializable(package="sparse_keras")
class FilterGroupLasso(GroupLasso):
    """``strength * sum_ij ||W_ij||`` over the 2-D filters (per output column for Dense): SSL-style
    connection sparsity, the block of Kiaee et al. 2016."""

    scheme = "filter"

    def group_sq_norms(self, kernel):
        return groups.filter_group_sq_norms(kernel)

    def group_sizes(self, shape):
        return groups.filter_group_size(shape)


class _NestedGroupLasso(GroupLasso):
    """Omega_2 (eq. 21-22) over nested spatial groups, each spanning all input channels."""

    def check_shape(self, shape):
        groups.check_square_kernel(shape, self.scheme)

    def group_sq_norms(self, kernel):
        return groups.nested_group_sq_norms(kernel, self.scheme)

    def group_sizes(self, shape):
        return groups.nested_group_sizes(shape, self.scheme)

    def _relaxed_counts(self, norms):
        # eq. 33: the relaxed size s'_ij of each kernel is squared, not the layer's total.
        return ops.sum(norms, axis=-1)


@keras.saving.register_keras_serializable(package="sparse_keras")
class NestedHalfRing(_NestedGroupLasso):
    """Omega_2 with nested half-ring groups: kernels shrink from the outside in, alternating the
    top-left and the bottom-right row+column pair, to learned sizes ``0..s``."""

    scheme = "half_ring"


@keras.saving.register_keras_serializable(package="sparse_keras")
class NestedRing(_NestedGroupLasso):
    """Omega_2 with nested full rings (``ceil(s/2)`` groups): learned sizes ``0, 1, 3, .., s``."""

    scheme = "ring"


@keras.saving.register_keras_serializable(package="sparse_keras")
class SumOfRegularizers(keras.regularizers.Regularizer):
    """Adds several regularizers on one weight, e.g. a group lasso on top of existing weight decay."""

    def __init__(self, regularizers):
        self.regularizers = [get(r) for r in regularizers]
        if not self.regularizers or any(r is None for r in self.regularizers):
            raise ValueError(f"SumOfRegularizers needs a non-empty list of regularizers, got {regularizers!r}")

    def __call__(self, x):
        return sum(r(x) for r in self.regularizers)

    def get_config(self):
        return {"regularizers": [keras.regularizers.serialize(r) for r in self.regularizers]}

    def __repr__(self):
        return f"SumOfRegularizers({self.regularizers!r})"

    @classmethod
    def from_config(cls, config):
        return cls([keras.regularizers.deserialize(r) for r in config["regularizers"]])


ALL_GROUP_LASSOS = {
    "kernel_group_lasso": KernelGroupLasso,
    "filter_group_lasso": FilterGroupLasso,
    "nested_half_ring": NestedHalfRing,
    "nested_ring": NestedRing,
}


# The strength a group lasso named without one gets (``get("kernel_group_lasso")``): 1e-4 is a mild
# penalty for a model trained with the mean cross-entropy (a unit-norm kernel costs 1e-4 per group, so a
# few hundred groups add a few percent to a loss of about 1); raise it (1e-3 to 1e-2) for visible sparsity
# within a few epochs, as the demos do.
DEFAULT_STRENGTH = 1e-4


def get(identifier, **kwargs):
    """Looks a regularizer up from a config value.

    Accepts ``None``, a regularizer instance, a name from :data:`ALL_GROUP_LASSOS` with its arguments as
    keyword arguments (``get("nested_half_ring", strength=1e-4)``), a dict ``{"name": ..., **arguments}``
    as a config file would write it, a Keras serialization dict, or a Keras built-in name such as ``"l2"``.

    A group lasso named without ``strength`` gets :data:`DEFAULT_STRENGTH` (1e-4), a mild penalty; the
    sparsity it reaches depends on the model and the schedule, so tune it (1e-4 to 1e-2).
    """
    if identifier is None or isinstance(identifier, keras.regularizers.Regularizer):
        return identifier
    if isinstance(identifier, dict):
        if "class_name" in identifier:
            if kwargs:
                raise ValueError(f"Keyword arguments {sorted(kwargs)} cannot be combined with a serialized regularizer")
            return keras.regularizers.deserialize(identifier)
        kwargs = {**{k: v for k, v in identifier.items() if k != "name"}, **kwargs}
        if "name" not in identifier:
            raise ValueError(f"A regularizer dict needs a 'name' key; got identifier={identifier!r}")
        identifier = identifier["name"]
    if isinstance(identifier, str):
        if identifier in ALL_GROUP_LASSOS:
            kwargs.setdefault("strength", DEFAULT_STRENGTH)
            try:
                return ALL_GROUP_LASSOS[identifier](**kwargs)
            except TypeError as error:
                raise ValueError(f"Bad arguments {kwargs!r} for regularizer {identifier!r}: {error}") from None
        try:
            regularizer = keras.regularizers.get(identifier)
        except ValueError:
            regularizer = None
        if regularizer is None:
            raise ValueError(
                f"Unknown regularizer {identifier!r}; expected one of {sorted(ALL_GROUP_LASSOS)} or a Keras "
                "regularizer name"
            )
        return type(regularizer)(**kwargs) if kwargs else regularizer
    if isinstance(identifier, type):
        raise ValueError(f"Pass a regularizer instance (e.g. {identifier.__name__}(strength=1e-4)), not the class {identifier!r}")
    if callable(identifier):
        return identifier
    raise ValueError(f"Cannot interpret regularizer identifier={identifier!r}: expected None, a regularizer, a name or a dict")


def terms_of(regularizer):
    """The parts of ``regularizer``, sums flattened: ``[]`` for ``None``, ``[regularizer]`` for one term."""
    if regularizer is None:
        return []
    if isinstance(regularizer, SumOfRegularizers):
        return [t for part in regularizer.regularizers for t in terms_of(part)]
    return [regularizer]


def group_lassos_in(regularizer):
    """The :class:`GroupLasso` terms inside ``regularizer`` (itself, or the parts of a sum)."""
    return [t for t in terms_of(regularizer) if isinstance(t, GroupLasso)]


def _check_strength(strength):
    # float("1e-4") parses, but a string here is an unparsed config value: refuse it, as Keras' own L1/L2 do.
    if isinstance(strength, (str, bytes)):
        raise ValueError(f"strength must be a non-negative float, got strength={strength!r}")
    try:
        value = float(strength)
    except (TypeError, ValueError):
        raise ValueError(f"strength must be a non-negative float, got strength={strength!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"strength must be a finite non-negative float, got strength={strength!r}")
    return value


class CoupledGroupLasso(keras.regularizers.Regularizer):
    """A group lasso over coupled channel groups (:func:`sparse_keras.structure.coupled_groups`):
    ``strength * sum_g ||slices of g||``, one norm over every trainable slice of a channel: the producing
    kernels' output slices and biases, BatchNormalization gamma and beta, depthwise slices, the consuming
    kernels' input slices. Training with it drives whole coupled groups to zero, which
    :func:`sparse_keras.shrink` then removes (a per-layer kernel lasso zeroes slices that other layers
    still need, so little can be removed).

    Use it through :func:`sparse_keras.regularize` (``sk.regularize(model, CoupledGroupLasso(1e-4))``), which
    binds it to the model's groups. The bound penalty is training state: like ADMM's, it is not written into
    saved models (call ``regularize`` again after loading).

    Args:
      strength: the weight of the penalty.
      norm: ``"l2"`` (plain norm) or ``"normalized"`` (divided by ``sqrt(group size)``, so wide and narrow
        groups are pulled alike).
      criterion: ``"group"`` (the norm above) or ``"bn_gamma"``: ``strength * sum |gamma|`` over the
        BatchNormalization scales of the prunable groups (network slimming, Liu et al. 2017).
    """

    CRITERIA = ("group", "bn_gamma")

    def __init__(self, strength, norm="l2", criterion="group"):
        self.strength = _check_strength(strength)
        if norm not in ("l2", "normalized"):
            raise ValueError(f"norm must be 'l2' or 'normalized', got norm={norm!r}")
        if criterion not in self.CRITERIA:
            raise ValueError(f"criterion must be one of {self.CRITERIA}, got criterion={criterion!r}")
        self.norm, self.criterion = norm, criterion

    def __call__(self, x):
        raise ValueError("CoupledGroupLasso spans several layers: attach it with sparse_keras.regularize(model, ...)")

    def bind(self, groups):
        """The penalty over ``groups`` (a :class:`~sparse_keras.structure.CoupledGroups`)."""
        return CoupledPenalty(self, groups)

    def get_config(self):
        return {"strength": self.strength, "norm": self.norm, "criterion": self.criterion}

    def __repr__(self):
        return f"CoupledGroupLasso(strength={self.strength!r}, norm={self.norm!r}, criterion={self.criterion!r})"


class CoupledPenalty(keras.regularizers.Regularizer):
    """A :class:`CoupledGroupLasso` bound to a model's prunable coupled groups.

    It sits on one kernel of the model (Keras calls regularizers per variable) and reads every variable of
    the groups, which compiled steps see live on every backend (they are the model's own variables). Per
    (variable, axis) it sums squares over the other axes and adds them into the groups with a segment sum.
    """

    def __init__(self, spec, groups):
        self.spec = spec
        prunable = groups.prunable if hasattr(groups, "prunable") else [g for g in groups if g.prunable]
        self.n_groups = len(prunable)
        entries = {}
        sizes = np.zeros(self.n_groups)
        for position, group in enumerate(prunable):
            for s in group.slices:
                if not s.trainable or (spec.criterion == "bn_gamma" and s.attr != "gamma"):
                    continue
                shape = s.shape()
                axis = s.axis % len(shape)
                key = (id(s.variable), axis, shape)
                if key not in entries:
                    entries[key] = [s.variable, axis, shape, np.full(shape[axis], self.n_groups, "int32")]
                entries[key][3][s.index] = position
                sizes[position] += s.size()
        self.entries = list(entries.values())
        self.sizes = np.maximum(sizes, 1.0).astype("float32")
        self.anchor = next((v for v, *_ in self.entries), None)

    def group_norms(self):
        """The norm of every prunable group (``|gamma|`` sums for ``criterion="bn_gamma"``), a tensor."""
        total = ops.zeros((self.n_groups + 1,), "float32")
        for variable, axis, shape, segments in self.entries:
            value = ops.reshape(ops.cast(ops.convert_to_tensor(variable), "float32"), shape)
            others = tuple(a for a in range(len(shape)) if a != axis)
            if self.spec.criterion == "bn_gamma":
                per_index = ops.abs(value)
            else:
                per_index = ops.sum(ops.square(value), axis=others) if others else ops.square(value)
            total = total + ops.segment_sum(per_index, ops.convert_to_tensor(segments), num_segments=self.n_groups + 1)
        total = total[: self.n_groups]
        if self.spec.criterion == "bn_gamma":
            return total
        norms = groups.safe_sqrt(total)
        if self.spec.norm == "normalized":
            norms = norms / ops.convert_to_tensor(np.sqrt(self.sizes))
        return norms

    def __call__(self, x):
        del x  # the penalty reads all of its variables, the one it is attached to among them
        return self.spec.strength * ops.sum(self.group_norms())

    def get_config(self):
        raise TypeError("CoupledPenalty is bound to live variables and is not serializable; re-run sk.regularize")

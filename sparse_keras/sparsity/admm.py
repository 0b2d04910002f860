"""ADMM sparsity training (Kiaee et al. 2016): W-step by the model's optimizer, analytic F-step, dual update.

The problem ``min_W L(W) + mu f(W)`` is split as ``min L(W) + mu f(F)  s.t.  W = F`` and solved by
alternating (eq. 5-7):

* W-step: ordinary training of ``L(W) + rho/2 ||W - U||^2`` with ``U = F - Gamma/rho``; the penalty is a
  regularizer on each sparsified kernel, so ``model.fit`` and custom loops (``sum(model.losses)``) do it;
* F-step: ``F = prox(W + Gamma/rho)`` block by block, group soft thresholding with ``a = mu/rho`` for the
  l1 penalty (eq. 9) or hard thresholding with ``b = sqrt(2 mu/rho)`` for l0 (eq. 10);
* dual update: ``Gamma += rho (W - F)``.

:class:`ADMM` is a ``keras.callbacks.Callback``. With a float ``mu`` it performs an F-step and dual update
every ``update_every`` epochs, and :meth:`ADMM.finalize` then sets ``W := F`` and installs masks for masked
fine-tuning. With a :class:`~sparse_keras.sparsity.schedules.MuPath` it runs Algorithm 1 by itself: for
each mu, ADMM iterations of ``path.epochs(i)`` epochs until the residuals fall below ``epsilon`` or
``path.max_iterations(i)`` is reached, then ``W := F``, masked fine-tuning for ``path.epochs(i)`` epochs,
a row of :attr:`ADMM.history`, and on to the next mu with F and Gamma carried over (masks lifted).

F and Gamma change outside gradients, so they live in a :class:`~sparse_keras.utils.state.TrainingState`
sublayer of each sparsified layer while the W-step penalty is on: compiled steps receive them as model
state and read them live on every backend (no retrace per update), and ``.keras`` files stay plain models.
"""

import json
import math

import keras
import numpy as np
from keras import ops

from sparse_keras import regularizers as regularizers_lib
from sparse_keras.inspection import kernels
from sparse_keras.ops import groups, proximal
from sparse_keras.sparsity import coupled, masking
from sparse_keras.utils import checks, files, state, tracing
from sparse_keras.sparsity.schedules import MuPath

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


class _Target:
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


class ADMM(keras.callbacks.Callback):
    """ADMM sparsity training as a Keras callback; see the module docstring.

    Args:
      penalty: ``"l1"`` (group lasso, soft threshold) or ``"l0"`` (number of blocks, hard threshold).
      mu: sparsity weight, a positive float, a :class:`MuPath`, or per layer (kernel norms differ by an order
        of magnitude between layers): a dict ``{layer name: float}`` naming every sparsified layer, or a
        callable ``layer -> float``. A coupled group takes the mu of its first producing layer.
      rho: augmented-Lagrangian weight (the authors' code: 100).
      block: ``"filter"`` (the paper's 2-D filter W_ij; one output unit for Dense), ``"kernel"`` (a whole
        output kernel), ``"element"``, or ``"coupled"``: the F-step thresholds whole coupled channel groups
        (:func:`sparse_keras.structure.coupled_groups`), the output slices of every kernel producing the
        channel together (e.g. a MobileNet expand conv's channel with the depthwise slice reading it), and
        :meth:`finalize` zeroes every slice of the dead groups (BatchNormalization too) so that
        :func:`sparse_keras.shrink` removes them.
      layers: the layers to sparsify: layer objects, layer names or layer classes (as ``where`` of
        :func:`sparse_keras.regularize`); ``None`` means every Conv/Dense kernel except the classifier.
      update_every: epochs per W-step with a float ``mu`` (a path sets its own, ``path.epochs(i)``).
      epsilon: tolerance of the stopping test (path mode).
      stopping: ``"paper"`` (``||W - F|| <= eps`` and ``||F - F_prev|| <= eps``) or ``"boyd"`` (the authors'
        code: absolute ``epsilon`` and relative 1e-2 tolerances on primal and scaled dual residuals).
      guard: if a layer would lose more than this fraction of its blocks, its threshold becomes the
        layer's mean block norm (the paper's over-pruning guard, 50%); ``None`` disables it.
      normalize_norm_by_size: compare ``||V_b|| / |b|`` with the threshold, as the authors' code does.
      finetune: in path mode, run masked fine-tuning for ``path.epochs(i)`` epochs after each mu.
      prune_bias: at :meth:`finalize`, also zero (and mask) the bias of every output unit whose whole kernel
        is zero, so that the unit is gone rather than a constant and :func:`sparse_keras.shrinking.shrink`
        can remove it.
      sparsity: instead of a threshold from ``mu``, a target: the fraction of each sparsified layer's blocks
        that every F-step zeroes (a float, or ``{layer name: fraction}``), i.e. F is the projection of
        ``W + Gamma/rho`` onto the blocks' cardinality set (Zhang et al. 2018, "A Systematic DNN Weight
        Pruning Framework using ADMM"). ``mu`` and ``guard`` are then unused; needs ``penalty="l0"``.

    When it attaches to a model compiled with SGD, it checks ``learning_rate * rho`` against
    :func:`stability_bound` and raises ``ValueError`` beyond it (:func:`check_optimizer`).
    """

    def __init__(
        self,
        penalty="l1",
        mu=1e-3,
        rho=100.0,
        block="filter",
        layers=None,
        update_every=1,
        epsilon=1e-4,
        stopping="paper",
        guard=0.5,
        normalize_norm_by_size=False,
        finetune=True,
        prune_bias=True,
        sparsity=None,
    ):
        super().__init__()
        if penalty not in PENALTIES:
            raise ValueError(f"penalty must be one of {PENALTIES}, got penalty={penalty!r}")
        block_axes(block, 4)  # validates block
        if stopping not in STOPPING:
            raise ValueError(f"stopping must be one of {STOPPING}, got stopping={stopping!r}")
        self.path = mu if isinstance(mu, MuPath) else None
        self._layer_mu = mu if isinstance(mu, dict) or (callable(mu) and self.path is None) else None
        if isinstance(mu, dict):
            for name, value in mu.items():
                checks.positive_float(f"mu[{name!r}]", value)
        elif self.path is None and self._layer_mu is None:
            checks.positive_float("mu", mu)
        checks.positive_float("rho", rho)
        checks.positive_float("epsilon", epsilon)
        if not isinstance(update_every, int) or update_every < 1:
            raise ValueError(f"update_every must be a positive integer, got update_every={update_every!r}")
        if guard is not None and not 0 < guard <= 1:
            raise ValueError(f"guard must be None or in (0, 1], got guard={guard!r}")
        self.penalty, self.rho, self.block, self.layers = penalty, float(rho), block, layers
        self.prune_bias = bool(prune_bias)
        self._fixed_mu = None if self.path is not None or self._layer_mu is not None else float(mu)
        self.update_every, self.epsilon, self.stopping, self.guard = update_every, float(epsilon), stopping, guard
        self.normalize_norm_by_size, self.finetune = bool(normalize_norm_by_size), bool(finetune)
        self.targets = []
        self.history = []  # one row per finished mu (path mode)
        self.masks = {}
        # Position in Algorithm 1; all of it is in get_state() so that a resumed run continues exactly.
        self.mu_index, self.iteration, self.phase, self.epochs_in_phase = 0, 0, "admm", 0
        self._converged = False  # whether the current mu stopped on the residual test (vs its iteration cap)
        self.sparsity_target = _check_sparsity(sparsity, penalty, block, self.path)

    # -- setting up -----------------------------------------------------------------------------------
    @property
    def mu(self):
        return self._fixed_mu if self.path is None else self.path.mu(self.mu_index)

    def mu_of(self, layer):
        """The sparsity weight of ``layer``'s kernels."""
        if self._layer_mu is None:
            return self.mu
        if isinstance(self._layer_mu, dict):
            return float(self._layer_mu[layer.name])
        value = self._layer_mu(layer)
        checks.positive_float(f"mu({layer.name!r})", value)
        return float(value)

    def sparsity_of(self, layer):
        """The fraction of ``layer``'s blocks that the F-step zeroes (``sparsity`` targets only)."""
        target = self.sparsity_target
        return float(target[layer.name]) if isinstance(target, dict) else target

    @property
    def attached(self):
        return bool(self.targets)

    def attach(self, model):
        """Creates F = W and Gamma = 0 for the selected kernels and adds the W-step penalty to them.

        Under ``tf.distribute`` call it inside ``strategy.scope()`` so that F and Gamma are mirrored
        (``sparse_keras.training.loop.train`` does this through ``on_train_begin``).
        """
        if self.attached:
            return self
        where = self.layers
        slots, _ = kernels.select_slots(model, where, exclude_classifier=True)
        if not slots:
            raise ValueError(f"ADMM found no Conv/Dense kernel to sparsify in model {model.name!r} (layers={where!r})")
        if getattr(model, "optimizer", None) is not None:
            self.check_optimizer(model.optimizer)
        for name, given in (("mu", self._layer_mu), ("sparsity", self.sparsity_target)):
            missing = sorted({s.layer.name for s in slots} - set(given)) if isinstance(given, dict) else []
            if missing:
                raise ValueError(f"{name} is a dict but names no value for the sparsified layers {missing}")
        self.set_model(model)
        self.targets = [_Target(slot, self.block) for slot in slots]
        if self.block == "coupled":
            self._couple(model)
        self._add_penalty()
        return self

    def check_optimizer(self, optimizer):
        """Raises ``ValueError`` if ``optimizer`` (SGD) would diverge on the W-step: see :func:`check_optimizer`.

        :meth:`attach` calls it with ``model.optimizer``; custom loops, whose optimizer is not the model's,
        call it themselves (``sparse_keras.training.loop.train`` does).
        """
        check_optimizer(optimizer, self.rho)

    def _couple(self, model):
        """For each target, the coupled group of each index along its output axis (-1: none)."""
        self.groups = coupled.coupled_groups(model, unsupported="ignore").prunable
        by_variable = {id(t.slot.variable): t for t in self.targets}
        for t in self.targets:
            t.segments = None
        self.group_mu_layer = []
        for position, group in enumerate(self.groups):
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
            self.group_mu_layer.append(layer)

    def _add_penalty(self):
        for t in self.targets:
            t.track()
            term = ADMMPenalty(self.rho, t.f, t.gamma)
            existing = t.original_regularizer
            t.slot.variable.regularizer = term if existing is None else regularizers_lib.SumOfRegularizers([existing, term])
        tracing.retrace(self.model)

    def _remove_penalty(self):
        for t in self.targets:
            t.untrack()
            t.slot.variable.regularizer = t.original_regularizer
        tracing.retrace(self.model)

    # -- the F-step and the dual update ---------------------------------------------------------------
    def _thresholds(self, target, norms):
        """Per-layer threshold on the block norms of V, with the over-pruning guard applied."""
        compare = norms / target.block_size if self.normalize_norm_by_size else norms
        if self.sparsity_target is not None:
            # The projection onto "at most (1 - s) of the layer's blocks nonzero" (Zhang et al. 2018): keep the
            # largest blocks of V, so thresholding itself reaches the asked sparsity, whatever the layer's scale.
            fraction = self.sparsity_of(target.slot.layer)
            return float(ops.convert_to_numpy(ops.quantile(ops.reshape(compare, (-1,)), fraction))), False
        mu = self.mu_of(target.slot.layer)
        threshold = mu / self.rho if self.penalty == "l1" else math.sqrt(2 * mu / self.rho)
        zeroed = float(ops.convert_to_numpy(ops.mean(ops.cast(compare <= threshold, "float32"))))
        if self.guard is not None and zeroed > self.guard:
            # Over-pruning guard: the zero set becomes the blocks at or below the layer's mean block norm.
            return float(ops.convert_to_numpy(ops.mean(compare))), True
        return threshold, False

    def _prox(self, target, v):
        """F-step for one kernel: block soft (l1) or hard (l0) thresholding of ``v = W + Gamma/rho``."""
        vc = target.canonical(v)
        norms = proximal.block_norms(vc, target.axes)
        threshold, guarded = self._thresholds(target, norms)
        if self.normalize_norm_by_size:
            keep = ops.cast(norms / target.block_size > threshold, vc.dtype)
            scale = threshold * target.block_size if guarded else self.mu_of(target.slot.layer) / self.rho
            shrunk = proximal.soft_threshold_groups(vc, scale, target.axes) if self.penalty == "l1" else vc
            return ops.reshape(shrunk * keep, v.shape)
        if self.penalty == "l1":
            return ops.reshape(proximal.soft_threshold_groups(vc, threshold, target.axes), v.shape)
        return ops.reshape(proximal.hard_threshold_groups(vc, threshold, target.axes), v.shape)

    def _coupled_prox(self):
        """F-step over coupled groups (host numpy): group soft/hard thresholding of ``V = W + Gamma/rho`` with
        one norm per group over the output slices of every kernel producing it; other entries keep ``V``."""
        vs, sq = [], np.zeros(len(self.groups) + 1)
        for t in self.targets:
            v = np.asarray(ops.convert_to_numpy(t.slot.variable), "float64") + np.asarray(ops.convert_to_numpy(t.gamma), "float64") / self.rho
            vs.append(v)
            if t.segments is not None:
                per = np.square(np.moveaxis(v.reshape(t.view), t.out_axis, -1)).reshape(-1, len(t.segments)).sum(axis=0)
                np.add.at(sq, t.segments, per)  # index -1 lands in the spare last slot
        norms = np.sqrt(sq[:-1])
        mus = np.array([self.mu_of(layer) for layer in self.group_mu_layer]) if self.groups else np.zeros(0)
        limits = mus / self.rho if self.penalty == "l1" else np.sqrt(2 * mus / self.rho)
        if self.guard is not None:
            limits = self._guard_families(norms, limits)
        if self.penalty == "l1":
            scale = np.where(norms > limits, 1 - limits / np.maximum(norms, 1e-30), 0.0)
        else:
            scale = (norms > limits).astype("float64")
        scale = np.append(scale, 1.0)  # entries of no group
        result = []
        for t, v in zip(self.targets, vs):
            if t.segments is not None:
                moved = np.moveaxis(v.reshape(t.view), t.out_axis, -1) * scale[t.segments]
                v = np.moveaxis(moved, -1, t.out_axis).reshape(v.shape)
            result.append(v.astype("float32"))
        return result

    def _guard_families(self, norms, limits):
        """The over-pruning guard per producing layer set: where more than ``guard`` of its groups would be
        zeroed, the limit becomes the family's mean group norm."""
        families = {}
        for position, group in enumerate(self.groups):
            families.setdefault(group.producers, []).append(position)
        limits = limits.copy()
        for members in families.values():
            members = np.asarray(members)
            if (norms[members] <= limits[members]).mean() > self.guard:
                limits[members] = norms[members].mean()
        return limits

    def update(self):
        """One F-step and dual update on the current weights; returns the residuals and sparsity.

        Call it yourself between blocks of steps of a custom training loop; the callback calls it at the
        end of every W-step.
        """
        if not self.attached:
            raise ValueError("ADMM.update() needs attach(model) (or model.fit with this callback) first")
        coupled = self._coupled_prox() if self.block == "coupled" else None
        updates, stats, blocks = [], [], {}
        for i, t in enumerate(self.targets):
            w = ops.cast(t.slot.variable, "float32")
            f_old = ops.convert_to_tensor(t.f)
            v = w + ops.convert_to_tensor(t.gamma) / self.rho
            f_new = ops.convert_to_tensor(coupled[i]) if coupled is not None else self._prox(t, v)
            gamma = ops.convert_to_tensor(t.gamma) + self.rho * (w - f_new)
            updates.append((t, f_new, gamma))
            finite = [ops.cast(ops.all(ops.isfinite(x)), "float32") for x in (w, f_new, gamma)]
            squares = [ops.sum(ops.square(x)) for x in (w - f_new, f_new - f_old, w, f_new, gamma)]
            norms = t.block_norms(f_new)
            blocks[t.path] = int(np.prod(norms.shape))
            zero_blocks = ops.sum(ops.cast(norms == 0, "float32"))
            zero_weights = ops.sum(ops.cast(f_new == 0, "float32"))
            stats.append(ops.stack([*finite, *squares, zero_blocks, zero_weights]))
        # One host transfer for every layer's numbers: on a GPU each read is a device sync, and dozens of them
        # per update cost more than the update itself.
        stats = np.asarray(ops.convert_to_numpy(ops.stack(stats)), "float64")
        for (t, _, _), row in zip(updates, stats):
            bad = [name for name, ok in zip(("weights W", "auxiliary F", "dual Gamma"), row[:3]) if not ok]
            if bad:  # before anything is stored: nothing after a non-finite W, F or Gamma would mean anything
                mu = self.mu_of(t.slot.layer) if self.sparsity_target is None else float("nan")
                raise FloatingPointError(
                    f"ADMM stopped: {' and '.join(bad)} of {t.path} are not finite (mu={mu:g}, rho={self.rho:g}, "
                    f"mu/rho={mu / self.rho:g}). Lower mu/rho or the learning rate."
                )
        for t, f_new, gamma in updates:
            t.f.assign(f_new)
            t.gamma.assign(gamma)
        primal2, dual2, w_norm, f_norm, gamma_norm = stats[:, 3:8].sum(axis=0)
        primal, dual = math.sqrt(primal2), math.sqrt(dual2)
        n = sum(int(np.prod(t.slot.shape)) for t in self.targets)
        if self.stopping == "paper":
            converged = primal <= self.epsilon and dual <= self.epsilon
        else:  # Boyd et al. 2011, section 3.3.1, as the authors' code computes it
            eps_pri = math.sqrt(n) * self.epsilon + 1e-2 * max(math.sqrt(w_norm), math.sqrt(f_norm))
            eps_dual = math.sqrt(n) * self.epsilon + 1e-2 * math.sqrt(gamma_norm)
            converged = primal < eps_pri and self.rho * dual < eps_dual
        zero_blocks = {t.path: int(row[8]) for t, row in zip(self.targets, stats)}
        return {"primal_residual": primal, "dual_residual": dual, "converged": converged, "zero_blocks": zero_blocks,
                "blocks": blocks, "sparsity": float(stats[:, 9].sum()) / max(n, 1)}

    def sparsity(self):
        """Zero blocks of F per sparsified kernel and the fraction of sparsified weights that are zero."""
        zero_blocks, blocks, zero_weights, weights = {}, {}, 0, 0
        for t in self.targets:
            norms = ops.convert_to_numpy(t.block_norms(ops.convert_to_tensor(t.f)))
            zero_blocks[t.path] = int((norms == 0).sum())
            blocks[t.path] = int(norms.size)
            zero_weights += int((ops.convert_to_numpy(t.f) == 0).sum())
            weights += int(np.prod(t.slot.shape))
        return {"zero_blocks": zero_blocks, "blocks": blocks, "sparsity": zero_weights / max(weights, 1)}

    # -- projection and masks -------------------------------------------------------------------------
    def finalize(self):
        """``W := F``, masks so that later training keeps F's zero blocks at zero; returns the masks.

        The W-step penalty is removed, so further ``fit`` calls are masked fine-tuning (Algorithm 1,
        line 11). Returns ``{variable path: 0/1 mask}``.
        """
        if not self.attached:
            raise ValueError("ADMM.finalize() needs attach(model) (or model.fit with this callback) first")
        self.masks = {}
        for t in self.targets:
            f = ops.convert_to_numpy(t.f)
            t.slot.variable.assign(f.astype(ops.convert_to_numpy(t.slot.variable).dtype))
            self.masks[t.path] = (f != 0).astype("float32")
            bias = getattr(t.slot.layer, "bias", None) if self.prune_bias and t.slot.layout in ("conv", "dense") else None
            if bias is not None and t.slot.weight_attr == "kernel":
                # An output unit whose whole kernel is zero but whose bias is not emits a constant: pruning the
                # bias with it makes the unit removable by shrinking (filter pruning), fine-tuning compensates.
                alive = (f.reshape(-1, f.shape[-1]) != 0).any(axis=0).astype("float32")
                if not alive.all():
                    bias.assign(ops.convert_to_numpy(bias) * alive)
                    self.masks[bias.path] = alive
        if self.block == "coupled":
            self._zero_dead_groups()
        self._remove_penalty()
        masking.install_masks(self.model, self.masks)
        self.phase = "finalized" if self.path is None else self.phase
        return dict(self.masks)

    def _zero_dead_groups(self):
        """Zeroes every slice (BatchNormalization included) of the groups whose producing slices F zeroed."""
        dead = []
        for group in self.groups:
            produced = [s for s in group.slices if s.role == "out" and s.attr != "bias"]
            if produced and all(not np.any(s.values()) for s in produced):
                dead.append(group)
        for path, mask in coupled.zero_groups(dead).items():
            self.masks[path] = mask * self.masks.get(path, 1.0)

    def release(self):
        """Lifts the masks and restores the W-step penalty (the next mu of a path starts like this)."""
        masking.remove_masks(self.model)
        self.masks = {}
        self._add_penalty()

    # -- the callback ---------------------------------------------------------------------------------
    def on_train_begin(self, logs=None):
        self.attach(self.model)

    def on_epoch_end(self, epoch, logs=None):
        if self.phase in ("finalized", "done"):
            return
        self.epochs_in_phase += 1
        if self.phase == "finetune":
            if self.epochs_in_phase >= self.path.epochs(self.mu_index):
                self._finish_mu(epoch, logs)
            return
        epochs_per_step = self.update_every if self.path is None else self.path.epochs(self.mu_index)
        if self.epochs_in_phase % epochs_per_step:
            return
        result = self.update()
        self.iteration += 1
        if logs is not None:
            logs.update(admm_primal_residual=result["primal_residual"], admm_sparsity=result["sparsity"])
        if self.path is None:
            return
        if result["converged"] or self.iteration >= self.path.max_iterations(self.mu_index):
            self._converged = bool(result["converged"])
            self.finalize()
            self.phase, self.epochs_in_phase = "finetune", 0
            if not self.finetune:
                self._finish_mu(epoch, logs)

    def _finish_mu(self, epoch, logs):
        row = {
            "mu": self.mu,
            "mu_index": self.mu_index,
            "iterations": self.iteration,
            "converged": self._converged,
            "epoch": int(epoch) + 1,
            **self.sparsity(),
            **{k: float(v) for k, v in (logs or {}).items() if np.ndim(v) == 0},
        }
        self.history.append(row)
        self.mu_index += 1
        self.iteration, self.epochs_in_phase = 0, 0
        if self.mu_index >= len(self.path):
            self.phase = "done"
            self.model.stop_training = True
            return
        self.release()
        self.phase = "admm"

    @property
    def total_epochs(self):
        """Epochs Algorithm 1 needs at most with this path (each mu: ADMM iterations plus fine-tuning)."""
        if self.path is None:
            raise ValueError("total_epochs is defined for a MuPath; with a float mu you choose the epochs")
        finetune = 1 if self.finetune else 0
        return sum(self.path.epochs(i) * (self.path.max_iterations(i) + finetune) for i in range(len(self.path)))

    # -- checkpointing --------------------------------------------------------------------------------
    def get_state(self):
        """Everything needed to resume exactly: F, Gamma and masks per kernel, the position, the history."""
        arrays = {}
        for t in self.targets:
            arrays[f"f:{t.path}"] = ops.convert_to_numpy(t.f)
            arrays[f"gamma:{t.path}"] = ops.convert_to_numpy(t.gamma)
        for path, mask in self.masks.items():
            arrays[f"mask:{path}"] = mask
        meta = {
            "mu_index": self.mu_index,
            "iteration": self.iteration,
            "phase": self.phase,
            "epochs_in_phase": self.epochs_in_phase,
            "converged": self._converged,
            "history": self.history,
        }
        return arrays, meta

    def set_state(self, arrays, meta):
        """Restores :meth:`get_state`'s output; the callback must be attached to the same model layout."""
        if not self.attached:
            raise ValueError("ADMM.set_state() needs attach(model) first")
        expected = {f"{kind}:{t.path}" for t in self.targets for kind in ("f", "gamma")}
        missing = sorted(expected - set(arrays))
        if missing:
            raise ValueError(f"ADMM state lacks arrays for {missing}")
        for t in self.targets:
            t.f.assign(arrays[f"f:{t.path}"])
            t.gamma.assign(arrays[f"gamma:{t.path}"])
        self.mu_index, self.iteration = int(meta["mu_index"]), int(meta["iteration"])
        self.phase, self.epochs_in_phase = meta["phase"], int(meta["epochs_in_phase"])
        self._converged, self.history = bool(meta.get("converged", False)), list(meta["history"])
        masks = {k.split(":", 1)[1]: v for k, v in arrays.items() if k.startswith("mask:")}
        masking.remove_masks(self.model)
        if masks:
            self._remove_penalty()
            masking.install_masks(self.model, masks)
        else:
            self._add_penalty()
        self.masks = masks
        tracing.retrace(self.model)

    def save(self, path):
        """Writes the state to ``path`` (``.npz``) atomically."""
        arrays, meta = self.get_state()
        with files.atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, __meta__=np.array(json.dumps(meta)), **arrays)
        return path

    def load(self, path):
        """Restores a state written by :meth:`save`."""
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["__meta__"]))
            arrays = {k: data[k] for k in data.files if k != "__meta__"}
        self.set_state(arrays, meta)
        return self


def _check_sparsity(sparsity, penalty, block, path):
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

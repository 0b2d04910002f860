"""ADMM sparsity training (Kiaee et al. 2016) as an algorithm: state and steps, no Keras callback.

:class:`ADMMAlgorithm` holds F, Gamma and the position on the mu path, and does the F-step, the dual update,
the stopping test, ``W := F`` with masks, and Algorithm 1's epoch schedule (:meth:`ADMMAlgorithm.end_epoch`);
the W-step is whatever trains the model (its penalty is a regularizer on each kernel). A custom loop drives
it directly; :class:`sparse_keras.admm.ADMM` is the same object as a ``keras.callbacks.Callback``.
"""

import math

import numpy as np
from keras import ops

from sparse_keras import regularizers as regularizers_lib
from sparse_keras.inspection import kernels
from sparse_keras.ops import proximal
from sparse_keras.sparsity import admm_kernels, coupled, masking
from sparse_keras.sparsity.schedules import MuPath
from sparse_keras.utils import checks, tracing


class ADMMAlgorithm:
    """ADMM's state and steps for one model; arguments and behaviour as :class:`sparse_keras.admm.ADMM`.

    ``attach(model)``, then ``update()`` after each W-step of your own training (or ``end_epoch(epoch)``
    each epoch to follow the schedule), ``finalize()`` for ``W := F`` and masks; ``save``/``load`` to resume.
    """

    def __init__(self, penalty="l1", mu=1e-3, rho=100.0, block="filter", layers=None, update_every=1, epsilon=1e-4,
                 stopping="paper", guard=0.5, normalize_norm_by_size=False, finetune=True, prune_bias=True,
                 sparsity=None):
        if penalty not in admm_kernels.PENALTIES:
            raise ValueError(f"penalty must be one of {admm_kernels.PENALTIES}, got penalty={penalty!r}")
        admm_kernels.block_axes(block, 4)  # validates block
        if stopping not in admm_kernels.STOPPING:
            raise ValueError(f"stopping must be one of {admm_kernels.STOPPING}, got stopping={stopping!r}")
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
        self._model = None
        self.targets = []
        self.history = []  # one row per finished mu (path mode)
        self.masks = {}
        # Position in Algorithm 1; all of it is in get_state() so that a resumed run continues exactly.
        self.mu_index, self.iteration, self.phase, self.epochs_in_phase = 0, 0, "admm", 0
        self._converged = False  # whether the current mu stopped on the residual test (vs its iteration cap)
        self.sparsity_target = admm_kernels.check_sparsity(sparsity, penalty, block, self.path)

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

    def set_model(self, model):
        self._model = model

    @property
    def model(self):
        return self._model

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
        self.targets = [admm_kernels.KernelTarget(slot, self.block) for slot in slots]
        if self.block == "coupled":
            self._couple(model)
        self._add_penalty()
        return self

    def check_optimizer(self, optimizer):
        """Raises ``ValueError`` if ``optimizer`` (SGD) would diverge on the W-step: see :func:`check_optimizer`.

        :meth:`attach` calls it with ``model.optimizer``; custom loops, whose optimizer is not the model's,
        call it themselves (``sparse_keras.training.loop.train`` does).
        """
        admm_kernels.check_optimizer(optimizer, self.rho)

    def _couple(self, model):
        self.groups = coupled.coupled_groups(model, unsupported="ignore").prunable
        self.group_mu_layer = admm_kernels.segment_targets(self.targets, self.groups)

    def _add_penalty(self):
        for t in self.targets:
            t.track()
            term = admm_kernels.ADMMPenalty(self.rho, t.f, t.gamma)
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
        mus = [self.mu_of(layer) for layer in self.group_mu_layer]
        return admm_kernels.coupled_prox(self.targets, self.groups, mus, self.rho, self.penalty, self.guard)

    def update(self):
        """One F-step and dual update on the current weights; returns the residuals and sparsity.

        Call it yourself between blocks of steps of a custom training loop; the callback calls it at the
        end of every W-step.
        """
        if not self.attached:
            raise ValueError("ADMM.update() needs attach(model) (or model.fit with this callback) first")
        coupled_f = self._coupled_prox() if self.block == "coupled" else None
        updates, stats, blocks = [], [], {}
        for i, t in enumerate(self.targets):
            w = ops.cast(t.slot.variable, "float32")
            f_old = ops.convert_to_tensor(t.f)
            v = w + ops.convert_to_tensor(t.gamma) / self.rho
            f_new = ops.convert_to_tensor(coupled_f[i]) if coupled_f is not None else self._prox(t, v)
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
        for (t, _, _), row in zip(updates, stats):  # before anything is stored
            if not np.all(row[:3]):
                mu = self.mu_of(t.slot.layer) if self.sparsity_target is None else float("nan")
                admm_kernels.check_finite(t.path, row[:3], mu, self.rho)
        for t, f_new, gamma in updates:
            t.f.assign(f_new)
            t.gamma.assign(gamma)
        primal2, dual2, w_norm, f_norm, gamma_norm = stats[:, 3:8].sum(axis=0)
        primal, dual = math.sqrt(primal2), math.sqrt(dual2)
        n = sum(int(np.prod(t.slot.shape)) for t in self.targets)
        converged = admm_kernels.converged(self.stopping, self.epsilon, self.rho, n, primal, dual, w_norm, f_norm,
                                           gamma_norm)
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
        dead, cache = [], {}
        for group in self.groups:
            produced = [s for s in group.slices if s.role == "out" and s.attr != "bias"]
            if produced and all(not np.any(s.values(cache)) for s in produced):
                dead.append(group)
        for path, mask in coupled.zero_groups(dead).items():
            self.masks[path] = mask * self.masks.get(path, 1.0)

    def release(self):
        """Lifts the masks and restores the W-step penalty (the next mu of a path starts like this)."""
        masking.remove_masks(self.model)
        self.masks = {}
        self._add_penalty()

    # -- Algorithm 1, epoch by epoch ------------------------------------------------------------------
    def end_epoch(self, epoch, logs=None):
        """Advances Algorithm 1 by one finished epoch (0-based ``epoch``): an F-step and dual update at the end
        of every W-step, ``W := F`` and masks once a mu stops, the next mu after fine-tuning. ``logs`` (a dict,
        optional) receives ``admm_primal_residual`` and ``admm_sparsity`` and is copied into :attr:`history`.
        Sets ``model.stop_training`` when the path is done; the callback calls it from ``on_epoch_end``.
        """
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
        admm_kernels.write_state(path, *self.get_state())
        return path

    def load(self, path):
        """Restores a state written by :meth:`save`."""
        self.set_state(*admm_kernels.read_state(path))
        return self

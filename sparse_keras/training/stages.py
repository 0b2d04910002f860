"""What each sparsity method does to a run, as a list of stages the generic binary executes in order.

A stage trains for some epochs with its own hooks and penalties, then makes a transition (ADMM's
``finalize``, thresholding and masks) before the next stage. The binary checkpoints the stage index, so a
resumed run re-enters its stage with :meth:`Stage.enter` (idempotent) and then restores the state saved.

Methods (``config.method.name``) and their keys:

* ``none``, ``lst``: ``epochs`` of plain training (LST-Net, the dense baselines: the method is the *model*,
  its builder's kwargs are in ``config.model.kwargs``).
* ``csc``: plain training of a model with CSC layers; their step sizes t = 0.9/L are refreshed in every
  training step by the layers and, before each evaluation and at the end, by this stage's hook.
* ``ssr`` (the structured-sparsity paper): ``kernel_strength`` (Omega_1), ``size_strength`` (Omega_2), ``size_scheme``
  (``half_ring`` | ``ring``), ``complexity_weighted`` (Omega_3, eq. 34), ``tau``, ``finetune_epochs``: train
  with the regularizers, threshold at tau (masks), fine-tune without them.
* ``admm`` (Kiaee et al. 2016): ``penalty`` (l0 | l1), ``mu``, ``rho``, ``block``, ``guard``, ``admm_epochs``,
  ``update_every``, ``finetune_epochs``: ``epochs`` dense, then ADMM W/F/dual steps, ``finalize`` (masks),
  masked fine-tuning. Optionally ``sparsity`` (a fraction of each layer's blocks that every F-step zeroes,
  instead of ``mu``'s threshold) and ``sparsify_optimizer`` / ``sparsify_schedule`` (shaped like
  ``config.optimizer`` / ``config.schedule``): the ADMM and fine-tuning stages' own optimizer, each
  stage a fresh one, so that the dense stage's schedule ends within the dense stage.
* ``lrsd`` (Guo et al. 2019): ``alpha``, ``keep_l1``, ``finetune_epochs`` and optionally ``finetune_optimizer`` /
  ``finetune_schedule`` (shaped like ``config.optimizer`` / ``config.schedule``): train the LRSD model
  (``model.kwargs.lrsd=True``), prune S at energy ratio alpha (masks), fine-tune with its own optimizer.
"""

import dataclasses
import math
from typing import Callable

METHODS = ("none", "lst", "csc", "ssr", "admm", "lrsd")


@dataclasses.dataclass
class Stage:
    name: str
    epochs: int
    enter: Callable = lambda: None  # sets the stage's penalties up (again, after a resume)
    leave: Callable = lambda: None  # the transition to the next stage
    hooks: list = dataclasses.field(default_factory=list)
    procedures: dict = dataclasses.field(default_factory=dict)  # checkpointed state (get/set_state)
    optimizer: object = None  # a config.optimizer-like ConfigDict for a stage with its own optimizer ...
    schedule: object = None  # ... and its config.schedule-like learning-rate schedule


def _number(config, key, minimum=0.0, strict=False):
    value = config.method.get(key)
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
          and (value > minimum if strict else value >= minimum))
    if not ok:
        relation = ">" if strict else ">="
        raise ValueError(f"config.method.{key} must be a finite number {relation} {minimum:g}, got {value!r}")
    return value


def _count(config, key):
    value = config.method.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"config.method.{key} must be a non-negative integer, got {value!r}")
    return value


def check(config):
    """Validates ``config.method`` (name and keys) without building anything."""
    name = config.method.get("name")
    if name not in METHODS:
        raise ValueError(f"config.method.name must be one of {METHODS}, got {name!r}")
    if name == "ssr":
        _number(config, "kernel_strength")
        _number(config, "size_strength")
        _number(config, "tau")
        _count(config, "finetune_epochs")
        if config.method.get("size_scheme") not in ("half_ring", "ring"):
            raise ValueError(
                f"config.method.size_scheme must be 'half_ring' or 'ring', got {config.method.get('size_scheme')!r}"
            )
    elif name == "admm":
        from sparse_keras.sparsity.admm import ADMM, check_stability

        for key in ("rho",) if config.method.get("sparsity") is not None else ("mu", "rho"):
            _number(config, key, strict=True)
        for key in ("admm_epochs", "finetune_epochs"):
            _count(config, key)
        if _count(config, "update_every") < 1:
            raise ValueError(f"config.method.update_every must be >= 1, got {config.method.update_every!r}")
        try:  # its errors start with the argument's name, which is the config key under config.method
            ADMM(config.method.penalty, mu=config.method.get("mu", 1.0), rho=config.method.rho,
                 block=config.method.block, guard=config.method.guard, sparsity=config.method.get("sparsity"))
        except ValueError as error:
            raise ValueError(f"config.method.{error}") from None
        own = config.method.get("sparsify_optimizer")
        if (own is None) != (config.method.get("sparsify_schedule") is None):
            raise ValueError("config.method.sparsify_optimizer and sparsify_schedule go together (or neither)")
        if own is not None:
            from sparse_keras.training import optimizers

            optimizers.check(own, config.method.sparsify_schedule)
        # The W-step runs under the ADMM stage's optimizer: its own, else the shared one.
        optimizer, key = (own, "config.method.sparsify_optimizer") if own is not None else (config.optimizer, "config.optimizer")
        if optimizer.name == "sgd":
            check_stability(optimizer.learning_rate, config.method.rho, optimizer.get("momentum", 0.0),
                            optimizer.get("nesterov", False),
                            names=(f"{key}.learning_rate", "config.method.rho", f"{key}.momentum"))
    elif name == "lrsd":
        from sparse_keras.training import optimizers

        alpha = _number(config, "alpha", strict=True)
        if alpha > 1:
            raise ValueError(f"config.method.alpha must be in (0, 1], got {alpha!r}")
        _count(config, "finetune_epochs")
        if config.method.get("finetune_optimizer") is not None:
            optimizers.check(config.method.finetune_optimizer, config.method.finetune_schedule)
        if not config.model.kwargs.get("lrsd", False):
            raise ValueError("config.method.name='lrsd' needs config.model.kwargs.lrsd=True (an LRSD model)")


def plan(config, model):
    """The stages of ``config``'s method on ``model`` (built, inside the strategy scope)."""
    name = config.method.name
    train = Stage("train", config.epochs)
    if name == "none":
        return [train]
    if name in ("lst", "csc"):
        _require_layers(config, model)
    if name == "lst":
        return [train]
    if name == "csc":
        return [_csc(model, train)]
    if name == "ssr":
        return _ssr(config, model, train)
    if name == "admm":
        return _admm(config, model, train)
    return _lrsd(config, model, train)


def _require_layers(config, model):
    """``lst`` and ``csc`` are models' methods: a model without their layers would train plainly."""
    from sparse_keras.layers import csc, lst

    kinds = {"lst": (lst.LSTBlockI, lst.LSTBlockII, lst.SharedSpatialTransform), "csc": (csc.CSCConv2D,)}
    wanted = kinds[config.method.name]
    if not any(isinstance(layer, wanted) for layer in model._flatten_layers(include_self=True, recursive=True)):
        raise ValueError(
            f"config.method.name={config.method.name!r} needs a model with {config.method.name.upper()} layers "
            f"({', '.join(k.__name__ for k in wanted)}); config.model.name={config.model.name!r} with "
            f"config.model.kwargs={dict(config.model.kwargs)!r} has none"
        )


class _RefreshStepSizes:
    """Hook: power iteration on the final dictionary of every CSC layer (before evaluation, at the end)."""

    def __init__(self, model):
        self.model = model

    def on_epoch_end(self, epoch, logs=None):
        from sparse_keras.layers import csc

        csc.update_step_sizes(self.model)

    on_train_end = on_epoch_end


def _csc(model, train):
    train.hooks = [_RefreshStepSizes(model)]
    return train


def _ssr(config, model, train):
    from sparse_keras import prune, regularizers
    from sparse_keras.sparsity import attach, masking

    m = config.method
    penalties = []
    if m.kernel_strength > 0:
        penalties.append(regularizers.KernelGroupLasso(m.kernel_strength))
    if m.size_strength > 0:
        size = regularizers.NestedHalfRing if m.size_scheme == "half_ring" else regularizers.NestedRing
        penalties.append(size(m.size_strength))

    def enter():
        for penalty in penalties:
            attach.regularize(model, penalty)
        if m.get("complexity_weighted", False):
            from sparse_keras.sparsity import complexity

            # Omega_3 (the structured-sparsity paper eq. 34): each layer's group lassos weighted by its r_i c_i d_(i-1), at base
            # counts (tau = 0) so that a resumed run gets the same weights.
            complexity.apply_weights(model, complexity.complexity_weights(model, tau=0.0))

    def leave():
        # Threshold while the group lassos are still attached: scheme None groups each kernel as its own
        # regularizers do (whole kernels for Omega_1, nested rings for Omega_2); detached, nothing would be cut.
        masks = prune.threshold(model, m.tau)
        attach.unregularize(model, [type(p) for p in penalties])
        masking.install_masks(model, masks)

    train.enter, train.leave = enter, leave
    return [train, Stage("finetune", m.finetune_epochs)]


def _admm(config, model, dense):
    from sparse_keras.models import admm_paper
    from sparse_keras.sparsity.admm import ADMM

    m = config.method
    admm = ADMM(m.penalty, mu=m.get("mu", 1.0), rho=m.rho, block=m.block, guard=m.guard, update_every=m.update_every,
                layers=admm_paper.SPARSIFIED.get(config.model.name), sparsity=m.get("sparsity"))
    own = dict(optimizer=m.get("sparsify_optimizer"), schedule=m.get("sparsify_schedule"))
    sparsify = Stage("admm", m.admm_epochs, enter=lambda: admm.attach(model), leave=admm.finalize, hooks=[admm],
                     procedures={"admm": admm}, **own)
    return [dense, sparsify, Stage("finetune", m.finetune_epochs, **own)]


def _lrsd(config, model, train):
    from sparse_keras import lrsd

    m = config.method

    def leave():
        lrsd.prune_lrsd(model, alpha=m.alpha, keep_l1=m.get("keep_l1", False))  # installs the masks

    train.leave = leave
    # The paper fine-tunes with its own schedule ("as Slimming"): a stage with its own optimizer.
    finetune = Stage("finetune", m.finetune_epochs, optimizer=m.get("finetune_optimizer"),
                     schedule=m.get("finetune_schedule"))
    if (finetune.optimizer is None) != (finetune.schedule is None):
        raise ValueError("config.method.finetune_optimizer and finetune_schedule go together (or neither)")
    return [train, finetune]

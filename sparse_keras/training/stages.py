"""What each sparsity method does to a run, as a list of stages the experiment executes in order.

A stage trains for some epochs with its own hooks and penalties, then makes a transition (ADMM's
``finalize``, thresholding and masks) before the next stage. The experiment checkpoints the stage index, so
a resumed run re-enters its stage with :meth:`Stage.enter` (idempotent) and then restores the state saved.
Everything a method knows lives here: its config keys and their checks, its stages, the threshold and
kernel-size scheme its reports read, and the method's own outputs.

Methods (``config.method.name``) and their keys:

* ``none``, ``lst``: ``epochs`` of plain training (LST-Net, the dense baselines: the method is the *model*,
  its builder's kwargs are in ``config.model.kwargs``).
* ``csc``: plain training of a model with CSC layers; their step sizes t = 0.9/L are refreshed in every
  training step by the layers and, before each evaluation and at the end, by this stage's hook.
* ``ssr`` (the structured-sparsity paper): ``kernel_strength`` (Omega_1), ``size_strength`` (Omega_2),
  ``size_scheme`` (``half_ring`` | ``ring``), ``complexity_weighted`` (Omega_3, eq. 34), ``tau``,
  ``finetune_epochs``: train with the regularizers, threshold at tau (masks), fine-tune without them.
* ``admm`` (Kiaee et al. 2016): ``penalty`` (l0 | l1), ``mu``, ``rho``, ``block``, ``guard``, ``admm_epochs``,
  ``update_every``, ``finetune_epochs``: ``epochs`` dense, then ADMM W/F/dual steps, ``finalize`` (masks),
  masked fine-tuning. Optionally ``sparsity`` (a fraction of each layer's blocks that every F-step zeroes,
  instead of ``mu``'s threshold), ``sparsify_optimizer`` / ``sparsify_schedule`` (shaped like
  ``config.optimizer`` / ``config.schedule``): the ADMM and fine-tuning stages' own optimizer, each stage a
  fresh one, so that the dense stage's schedule ends within the dense stage; ``layers`` (the layers to
  sparsify; None: the paper's selection for its models, else every kernel but the classifier);
  ``finetune_shrunk`` (with ``sparsify_optimizer``): the fine-tuning trains the shrunk model in place of
  the masked one and writes its weights back (:class:`~sparse_keras.sparsity.shrunk_twin.ShrunkTwin`:
  the same fine-tuning, each step as much cheaper as the removed channels make it).
  With ``mu_path`` (``start``, ``stop``, ``num``, ``start_index``, ``delta``, ``nu``, ``xi``, ``max_mus``)
  the paper's continuation (Algorithm 1) replaces the fixed ``mu``: after ``epochs`` dense, for each mu of
  the increasing log grid ADMM iterations until ``epsilon`` / ``stopping`` or the cap, ``W := F``, masked
  fine-tuning (``finetune``), one row of the solution path (Table 3 and Fig. 2: :mod:`.mu_path`).
* ``lrsd`` (Guo et al. 2019): ``alpha``, ``keep_l1``, ``finetune_epochs`` and optionally ``finetune_optimizer``
  / ``finetune_schedule`` (shaped like ``config.optimizer`` / ``config.schedule``): train the LRSD model
  (``model.kwargs.lrsd=True``), prune S at energy ratio alpha (masks), fine-tune with its own optimizer.
"""

import dataclasses
import math
import os
from typing import Callable

from sparse_keras import lrsd, prune, regularizers
from sparse_keras.admm import ADMM, MuPath, check_stability
from sparse_keras.layers import csc, lst
from sparse_keras.models import admm_paper
from sparse_keras.sparsity import attach, complexity, masking
from sparse_keras.training import mu_path, optimizers
from sparse_keras.utils import files

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
    finished: Callable = lambda: False  # True when the stage has nothing left to train (a finished mu path)
    shrunk: bool = False  # trains the shrunk model in place of the masked one (needs its own optimizer)
    record: Callable = None  # JSON the stage leaves for the outputs (kept in transitions.json across resumes)
    outputs: Callable = None  # (model, summary, transitions, workdir) -> names of the method's own files


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
    """Validates ``config.method`` (name and keys) without building anything.

    The ADMM callback's own arguments (penalty, block, guard, sparsity, the mu path) are checked where it is
    built, by :func:`plan`, before the run touches its workdir.
    """
    name = config.method.get("name")
    if name not in METHODS:
        raise ValueError(f"config.method.name must be one of {METHODS}, got {name!r}")
    if name == "ssr":
        for key in ("kernel_strength", "size_strength", "tau"):
            _number(config, key)
        _count(config, "finetune_epochs")
        if config.method.get("size_scheme") not in ("half_ring", "ring"):
            raise ValueError(
                f"config.method.size_scheme must be 'half_ring' or 'ring', got {config.method.get('size_scheme')!r}"
            )
    elif name == "admm":
        _check_admm(config)
    elif name == "lrsd":
        alpha = _number(config, "alpha", strict=True)
        if alpha > 1:
            raise ValueError(f"config.method.alpha must be in (0, 1], got {alpha!r}")
        _count(config, "finetune_epochs")
        _check_own_optimizer(config, "finetune")
        if not config.model.kwargs.get("lrsd", False):
            raise ValueError("config.method.name='lrsd' needs config.model.kwargs.lrsd=True (an LRSD model)")


def _check_own_optimizer(config, prefix):
    """``config.method.<prefix>_optimizer`` and ``<prefix>_schedule``: both or neither, and valid."""
    own = config.method.get(f"{prefix}_optimizer")
    if (own is None) != (config.method.get(f"{prefix}_schedule") is None):
        raise ValueError(f"config.method.{prefix}_optimizer and {prefix}_schedule go together (or neither)")
    if own is not None:
        optimizers.check(own, config.method[f"{prefix}_schedule"])
    return own


def _check_admm(config):
    path = config.method.get("mu_path")
    fixed_mu = path is None and config.method.get("sparsity") is None
    _number(config, "rho", strict=True)
    if fixed_mu:
        _number(config, "mu", strict=True)
    if path is None:
        for key in ("admm_epochs", "finetune_epochs"):
            _count(config, key)
        if _count(config, "update_every") < 1:
            raise ValueError(f"config.method.update_every must be >= 1, got {config.method.update_every!r}")
    own = _check_own_optimizer(config, "sparsify")
    shrunk = config.method.get("finetune_shrunk", False)
    if not isinstance(shrunk, bool):
        raise ValueError(f"config.method.finetune_shrunk must be True or False, got {shrunk!r}")
    if shrunk and (path is not None or own is None):
        # The shrunk model needs an optimizer of its own, and the mu path fine-tunes inside the ADMM stage.
        raise ValueError("config.method.finetune_shrunk=True needs config.method.sparsify_optimizer (the "
                         "fine-tuning's own optimizer) and no config.method.mu_path")
    # The W-step runs under the ADMM stage's optimizer: its own, else the shared one. This is the one place
    # a config's lr * rho is checked (the loop checks the optimizer itself again when it trains).
    optimizer, key = (own, "config.method.sparsify_optimizer") if own is not None else (config.optimizer, "config.optimizer")
    if optimizer.name == "sgd":
        check_stability(optimizer.learning_rate, config.method.rho, optimizer.get("momentum", 0.0),
                        optimizer.get("nesterov", False),
                        names=(f"{key}.learning_rate", "config.method.rho", f"{key}.momentum"))


def report_options(config):
    """``(tau, scheme)`` the run's reports count structures with: the method's threshold, and the kernel
    size scheme of its size regularizer (read with it even after fine-tuning took the penalty off)."""
    m = config.method
    scheme = m.get("size_scheme") if m.get("size_strength", 0) > 0 else None
    return m.get("tau", 0.0), scheme


def plan(config, model, evaluate=None):
    """The stages of ``config``'s method on ``model`` (built, inside the strategy scope).

    ``evaluate() -> (accuracy, loss)``: the run's test evaluation, which the ADMM mu path reads into each
    row of its solution path.
    """
    name = config.method.name
    train = Stage("train", config.epochs)
    if name == "none":
        return [train]
    if name in ("lst", "csc"):
        _require_layers(config, model)
    if name == "lst":
        return [train]
    if name == "csc":
        train.hooks = [_RefreshStepSizes(model)]
        return [train]
    if name == "ssr":
        return _ssr(config, model, train)
    if name == "admm":
        return _admm(config, model, train, evaluate)
    return _lrsd(config, model, train)


def _require_layers(config, model):
    """``lst`` and ``csc`` are models' methods: a model without their layers would train plainly."""
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
        csc.update_step_sizes(self.model)

    on_train_end = on_epoch_end


def _ssr(config, model, train):
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
            # Omega_3 (the structured-sparsity paper eq. 34): each layer's group lassos weighted by its
            # r_i c_i d_(i-1), at base counts (tau = 0) so that a resumed run gets the same weights.
            complexity.apply_weights(model, complexity.complexity_weights(model, tau=0.0))

    def leave():
        # Threshold while the group lassos are still attached: scheme None groups each kernel as its own
        # regularizers do (whole kernels for Omega_1, nested rings for Omega_2); detached, nothing would be cut.
        masks = prune.threshold(model, m.tau)
        attach.unregularize(model, [type(p) for p in penalties])
        masking.install_masks(model, masks)

    train.enter, train.leave = enter, leave
    return [train, Stage("finetune", m.finetune_epochs)]


def _admm(config, model, dense, evaluate):
    m = config.method
    layers = m.get("layers") or admm_paper.SPARSIFIED.get(config.model.name)
    try:
        path = None if m.get("mu_path") is None else _mu_path(m.mu_path)
        admm = ADMM(m.penalty, mu=path or m.get("mu", 1.0), rho=m.rho, block=m.block, guard=m.guard,
                    update_every=m.get("update_every", 1), layers=layers, sparsity=m.get("sparsity"),
                    epsilon=m.get("epsilon", 1e-4), stopping=m.get("stopping", "paper"),
                    finetune=m.get("finetune", True))
    except ValueError as error:  # its errors start with the argument's name, a key under config.method
        raise ValueError(f"config.method.{error}") from None
    own = dict(optimizer=m.get("sparsify_optimizer"), schedule=m.get("sparsify_schedule"))
    if path is None:
        sparsify = Stage("admm", m.admm_epochs, enter=lambda: admm.attach(model), leave=admm.finalize, hooks=[admm],
                         procedures={"admm": admm}, **own)
        return [dense, sparsify, Stage("finetune", m.finetune_epochs, shrunk=m.get("finetune_shrunk", False), **own)]
    if evaluate is None:
        raise ValueError("the ADMM mu path reads the test accuracy into its rows: plan(..., evaluate=...)")
    title = f"ADMM-{m.penalty} on {config.model.name}, {config.data.name}"
    # Algorithm 1 runs inside the ADMM callback (fine-tuning after each mu included); the last mu's masks
    # stay, so the stage ends without a transition (a finalize would undo the last fine-tuning).
    sparsify = Stage(
        "admm", admm.total_epochs, enter=lambda: admm.attach(model), procedures={"admm": admm}, **own,
        hooks=[mu_path.Evaluate(evaluate), admm, mu_path.PathMacs(model, admm)],
        finished=lambda: admm.phase == "done",
        record=lambda: {"history": admm.history, "dense_macs": mu_path.filter_macs(model, admm)[0]},
        outputs=lambda model, summary, transitions, workdir: mu_path.write_outputs(
            transitions["admm:record"], transitions["train:end"], summary, workdir, title),
    )
    return [dense, sparsify]


def _mu_path(p):
    """The paper's increasing grid of ``p`` (``config.method.mu_path``), cut at ``max_mus`` for short runs."""
    try:
        full = MuPath.log_grid(p.start, p.stop, p.num, p.start_index, delta=p.delta, nu=p.nu, xi=p.xi)
    except ValueError as error:
        raise ValueError(f"mu_path: {error}") from None
    if p.get("max_mus") is not None and (isinstance(p.max_mus, bool) or not isinstance(p.max_mus, int)
                                         or p.max_mus < 1):
        raise ValueError(f"mu_path.max_mus must be None or a positive integer, got {p.max_mus!r}")
    return MuPath(full.mus[: p.get("max_mus")], delta=p.delta, nu=p.nu, xi=p.xi)


def _lrsd(config, model, train):
    m = config.method

    def leave():
        lrsd.prune_lrsd(model, alpha=m.alpha, keep_l1=m.get("keep_l1", False))  # installs the masks

    def outputs(model, summary, transitions, workdir):
        """N_c / N_o, the paper's Tables 1-3 row (dense, pruned, fine-tuned accuracy) and Fig. 5."""
        counts = lrsd.compression(model)
        percent = lambda key: None if key not in transitions else 100 * transitions[key]  # noqa: E731
        row = lrsd.CompressionResult(
            config.model.name, config.data.name, "LRSD", None, counts.original, counts.compressed,
            percent("train:end"), percent("train:after_transition"), 100 * summary["test_accuracy"],
        )
        summary["lrsd_compression"] = counts.to_dict()
        files.write_text(os.path.join(workdir, "lrsd_table.md"), lrsd.results_table([row]) + "\n" + counts.to_markdown())
        lrsd.plot_layer_ratios(counts, os.path.join(workdir, "lrsd_layers.png"))
        return ("lrsd_table.md", "lrsd_layers.png")

    train.leave = leave
    # The paper fine-tunes with its own schedule ("as Slimming"): a stage with its own optimizer.
    finetune = Stage("finetune", m.finetune_epochs, optimizer=m.get("finetune_optimizer"),
                     schedule=m.get("finetune_schedule"), outputs=outputs)
    return [train, finetune]

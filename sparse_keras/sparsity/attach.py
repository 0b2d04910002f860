"""Attaching regularizers to the kernels of an existing, built Keras model."""

import warnings

from sparse_keras import regularizers as regularizers_lib
from sparse_keras.ops import groups
from sparse_keras.inspection import kernels
from sparse_keras.sparsity import coupled
from sparse_keras.utils import tracing


def regularize(model, regularizer, where=None, exclude_classifier=True, keep_existing=True):
    """Attaches ``regularizer`` to the kernels of a built model, in place, and returns the model.

    After this, ``model.losses`` includes the penalty, so ``model.fit`` and custom loops that add
    ``sum(model.losses)`` train with it, and ``model.save("m.keras")`` / ``keras.saving.load_model``
    keep it (it is written into each layer's ``*_regularizer`` config).

    Args:
      model: a built Keras model (functional, sequential or subclassed), e.g. a ``keras.applications`` one.
      regularizer: a regularizer, a list of them (summed), or anything
        :func:`sparse_keras.regularizers.get` accepts.
      where: ``None`` for every Conv/DepthwiseConv/Dense kernel the regularizer can group (a ring
        regularizer silently skips Dense and non-square kernels), a callable ``layer -> bool``, or layer
        names / classes. A layer picked explicitly that the regularizer cannot group is an error.
      exclude_classifier: leave the model's last kernel layer alone (the papers never regularize it).
      keep_existing: add to a regularizer already on the kernel (e.g. weight decay) instead of replacing
        it. An existing sparse_keras group lasso of the same kind is always replaced, so re-running is
        idempotent, while different kinds accumulate (kernel number and kernel size together).

    Returns:
      ``model``.
    """
    if isinstance(regularizer, regularizers_lib.CoupledGroupLasso):
        return _regularize_coupled(model, regularizer, where, exclude_classifier)
    if isinstance(regularizer, (list, tuple)):
        regularizer = regularizers_lib.SumOfRegularizers(list(regularizer))
    regularizer = regularizers_lib.get(regularizer)
    if regularizer is None:
        raise ValueError("regularize() needs a regularizer, got regularizer=None")
    slots, explicit = kernels.select_slots(model, where, exclude_classifier)
    # Fit everything before touching the model so that a bad selection changes nothing.
    chosen = [(slot, _fit_to_slot(regularizer, slot, explicit)) for slot in slots]
    if not any(reg is not None for _, reg in chosen):
        warnings.warn(
            f"regularize(): no kernel of model {model.name!r} can take {type(regularizer).__name__} "
            f"(exclude_classifier={exclude_classifier}, where={where!r}); nothing was attached, so it trains "
            "without the penalty",
            stacklevel=2,
        )
    for slot, reg in chosen:
        if reg is not None:
            set_regularizer(slot, _combine(slot.variable.regularizer, reg, keep_existing))
    # A step already traced by fit/evaluate baked in the old regularizers; Keras would reuse it.
    tracing.retrace(model)
    return model


def _regularize_coupled(model, spec, where, exclude_classifier):
    """Binds a :class:`~sparse_keras.regularizers.CoupledGroupLasso` to the model's coupled groups and puts
    the penalty on one kernel's variable (not on the layer's config: it is training state)."""
    groups = coupled.coupled_groups(model)
    if where is not None or not exclude_classifier:
        slots, _ = kernels.select_slots(model, where, exclude_classifier)
        chosen = {id(s.layer) for s in slots}
        groups = [g for g in groups.prunable if all(id(s.layer) in chosen for s in g.slices if s.role == "out")]
    penalty = spec.bind(groups)
    if penalty.anchor is None:
        raise ValueError(f"Model {model.name!r} has no prunable coupled group to regularize (where={where!r})")
    _remove_coupled(model)
    existing = penalty.anchor.regularizer
    penalty.anchor.regularizer = penalty if existing is None else regularizers_lib.SumOfRegularizers([existing, penalty])
    tracing.retrace(model)
    return model


def _remove_coupled(model):
    for variable in model.trainable_variables:
        terms = regularizers_lib.terms_of(variable.regularizer)
        kept = [t for t in terms if not isinstance(t, regularizers_lib.CoupledPenalty)]
        if len(kept) != len(terms):
            variable.regularizer = None if not kept else kept[0] if len(kept) == 1 else regularizers_lib.SumOfRegularizers(kept)


def unregularize(model, kinds=None):
    """Removes sparse_keras group lassos from every kernel of ``model`` (e.g. before fine-tuning).

    ``kinds``: group-lasso classes to remove (``CoupledGroupLasso`` for the coupled penalty), ``None`` for
    all of them. Other regularizers (weight decay) stay. Returns ``model``.
    """
    if kinds is None or regularizers_lib.CoupledGroupLasso in tuple(kinds):
        _remove_coupled(model)
    kinds = tuple(kinds) if kinds is not None else (regularizers_lib.GroupLasso,)
    for slot in kernels.model_kernel_slots(model):
        terms = regularizers_lib.terms_of(slot.variable.regularizer)
        kept = [t for t in terms if not isinstance(t, kinds)]
        if len(kept) != len(terms):
            set_regularizer(slot, None if not kept else kept[0] if len(kept) == 1 else regularizers_lib.SumOfRegularizers(kept))
    tracing.retrace(model)
    return model


def _fit_to_slot(regularizer, slot, explicit):
    """``regularizer`` adapted to the slot's layout, without the group lassos that cannot group it."""
    if isinstance(regularizer, regularizers_lib.SumOfRegularizers):
        parts = [_fit_to_slot(r, slot, explicit) for r in regularizer.regularizers]
        parts = [r for r in parts if r is not None]
        if len(parts) > 1:
            return regularizers_lib.SumOfRegularizers(parts)
        return parts[0] if parts else None
    if not isinstance(regularizer, regularizers_lib.GroupLasso):
        return regularizer
    fitted = regularizer.for_layout(slot.layout)
    try:
        fitted.check_shape(groups.canonical_shape(slot.shape, slot.layout))
    except ValueError as error:
        if explicit:
            raise ValueError(f"Layer {slot.layer.name!r}: {error}") from None
        return None
    return fitted


def _combine(existing, new, keep_existing):
    new_terms = regularizers_lib.terms_of(new)
    replaced = {type(t) for t in new_terms if isinstance(t, regularizers_lib.GroupLasso)}
    kept = [
        t
        for t in regularizers_lib.terms_of(existing)
        if (isinstance(t, regularizers_lib.GroupLasso) and type(t) not in replaced)
        or (keep_existing and not isinstance(t, regularizers_lib.GroupLasso))
    ]
    terms = kept + new_terms
    return terms[0] if len(terms) == 1 else regularizers_lib.SumOfRegularizers(terms)


def set_regularizer(slot, regularizer):
    """Puts ``regularizer`` (or ``None``) on the kernel of ``slot``, a :class:`~sparse_keras.inspection.kernels.KernelSlot`."""
    slot.variable.regularizer = regularizer
    if slot.regularizer_attr is not None:
        # Setting the constructor argument too makes get_config (and so model.save) record it.
        setattr(slot.layer, slot.regularizer_attr, regularizer)

"""Attaching regularizers to the kernels of an existing, built Keras model."""

from sparse_keras import regularizers as regularizers_lib
from sparse_keras.ops import groups
from sparse_keras.sparsity import kernels


def regularize(model, regularizer, where=None, exclude_classifier=True, keep_existing=True):
    """Attaches ``regularizer`` to the kernels of a built model, in place, and returns the model.

    After this, ``model.losses`` includes the penalty, so ``model.fit`` and custom loops that add
    ``sum(model.losses)`` train with it, and ``model.save("m.keras")`` / ``keras.saving.load_model``
    keep it (it is written into each layer's ``*_regularizer`` config).

    Args:
      model: a built Keras model (functional, sequential or subclassed), e.g. a ``keras.applications`` one.
      regularizer: a regularizer or anything :func:`sparse_keras.regularizers.get` accepts.
      where: ``None`` for every Conv/DepthwiseConv/Dense kernel the regularizer can group (a ring
        regularizer silently skips Dense and non-square kernels), a callable ``layer -> bool``, or layer
        names / classes. A layer picked explicitly that the regularizer cannot group is an error.
      exclude_classifier: leave the model's last kernel layer alone (the papers never regularize it).
      keep_existing: add to a regularizer already on the kernel (e.g. weight decay) instead of replacing
        it; an existing sparse_keras group lasso is always replaced, so re-running is idempotent.

    Returns:
      ``model``.
    """
    regularizer = regularizers_lib.get(regularizer)
    if regularizer is None:
        raise ValueError("regularize() needs a regularizer, got None")
    slots, explicit = kernels.select_slots(model, where, exclude_classifier)
    chosen = []
    for slot in slots:
        if isinstance(regularizer, regularizers_lib.GroupLasso):
            reg = regularizer.for_layout(slot.layout)
            try:
                reg.check_shape(groups.canonical_shape(slot.shape, slot.layout))
            except ValueError as error:
                if explicit:
                    raise ValueError(f"Layer {slot.layer.name!r}: {error}") from None
                continue
        else:
            reg = regularizer
        chosen.append((slot, reg))
    # Validate everything before touching the model so that a bad selection changes nothing.
    for slot, reg in chosen:
        _attach(slot, _combine(slot.variable.regularizer, reg, keep_existing))
    return model


def _combine(existing, new, keep_existing):
    if existing is None or not keep_existing:
        return new
    if isinstance(existing, regularizers_lib.GroupLasso):
        return new
    if isinstance(existing, regularizers_lib.SumOfRegularizers):
        kept = [r for r in existing.regularizers if not isinstance(r, regularizers_lib.GroupLasso)]
        return regularizers_lib.SumOfRegularizers(kept + [new]) if kept else new
    return regularizers_lib.SumOfRegularizers([existing, new])


def _attach(slot, regularizer):
    slot.variable.regularizer = regularizer
    if slot.regularizer_attr is not None:
        # Setting the constructor argument too makes get_config (and so model.save) record it.
        setattr(slot.layer, slot.regularizer_attr, regularizer)

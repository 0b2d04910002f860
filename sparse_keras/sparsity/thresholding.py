"""Turning learned, approximately-zero structure into exact zeros."""

import numpy as np
from keras import ops

from sparse_keras import regularizers as regularizers_lib
from sparse_keras.ops import groups
from sparse_keras.inspection import kernels
from sparse_keras.ops import survivors


def threshold(model, tau=None, scheme=None, where=None, relative=None):
    """Zeroes every group whose l2 norm is ``<= tau`` (eq. 15 for kernels, eq. 23 for nested groups).

    Args:
      model: a built Keras model.
      tau: the threshold (the structured-sparsity paper uses 1e-3), compared with the plain l2 norm of each group.
      scheme: ``"kernel"``, ``"filter"``, ``"half_ring"`` or ``"ring"`` for every selected kernel; ``None``
        takes, per kernel, the scheme of the sparse_keras group lasso attached to it (kernels without
        one are left alone). With a nested scheme only square conv kernels are touched.
      where: which layers, as in :func:`sparse_keras.regularize` (the classifier is excluded unless named).
      relative: instead of ``tau``, a fraction of each kernel's largest group norm (e.g. 0.05): a group is
        zeroed when its norm is at most ``relative * max``, so one value suits layers of any scale.

    Returns:
      ``{variable path: keep mask}``, float 0/1 numpy arrays in the variable's shape, for every kernel
      thresholded; the masks are what masked fine-tuning must hold at zero.
    """
    if (tau is None) == (relative is None):
        raise ValueError(f"Pass exactly one of tau= or relative=, got tau={tau!r}, relative={relative!r}")
    if relative is not None and not (isinstance(relative, (int, float)) and 0 <= relative < 1):
        raise ValueError(f"relative must be a fraction in [0, 1), got relative={relative!r}")
    tau = 0.0 if tau is None else float(tau)
    if not np.isfinite(tau) or tau < 0:
        raise ValueError(f"tau must be a finite non-negative float, got tau={tau!r}")
    if scheme is not None:
        survivors.check_scheme(scheme)
    slots, _ = kernels.select_slots(model, where, exclude_classifier=True)
    masks = {}
    for slot in slots:
        for slot_scheme in _schemes_for(slot, scheme):
            value = ops.convert_to_numpy(slot.variable)
            kernel = np.reshape(value, groups.canonical_shape(value.shape, slot.layout))
            limit = tau if relative is None else relative * _largest_group_norm(kernel, slot_scheme)
            mask = survivors.keep_mask(kernel, limit, slot_scheme).reshape(value.shape)
            slot.variable.assign((value * mask).astype(value.dtype))
            masks[slot.path] = mask * masks.get(slot.path, 1.0)
    return masks


def _schemes_for(slot, scheme):
    """The schemes to apply to one kernel: the requested one if it can group it, else its regularizers'."""
    shape = groups.canonical_shape(slot.shape, slot.layout)
    if scheme is None:
        wanted = [r.scheme for r in regularizers_lib.group_lassos_in(slot.variable.regularizer)]
    else:
        wanted = [scheme]
    return [s for s in wanted if s not in groups.NESTED_SCHEMES or _is_square_conv(shape)]


def _largest_group_norm(kernel, scheme):
    if scheme == "kernel":
        return float(survivors.kernel_norms(kernel).max(initial=0.0))
    if scheme == "filter":
        return float(np.sqrt(ops.convert_to_numpy(groups.filter_group_sq_norms(np.asarray(kernel, "float32")))).max(initial=0.0))
    return float(survivors.nested_norms(kernel, scheme).max(initial=0.0))


def _is_square_conv(shape):
    return len(shape) == 4 and shape[0] == shape[1]

"""What survives of a kernel at threshold ``tau``: alive kernels, learned sizes, and entry masks.

Host-side (numpy) reading of the groups of :mod:`sparse_keras.ops.groups`, shared by
:func:`sparse_keras.prune.threshold` (which zeroes what is below ``tau``, eq. 15/23) and
:mod:`sparse_keras.analysis` (which counts what is left, eq. 10-11/20).
"""

import numpy as np
from keras import ops

from sparse_keras.ops import groups

SCHEMES = ("kernel", "filter", "half_ring", "ring")


def check_scheme(scheme):
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}, got scheme={scheme!r}")
    return scheme


def _np(x):
    return np.asarray(ops.convert_to_numpy(x), dtype="float32")


def kernel_norms(kernel):
    """``||k_j||`` of each output kernel of a canonical kernel, as numpy ``(out,)``."""
    return np.sqrt(_np(groups.kernel_group_sq_norms(np.asarray(kernel, "float32"))))


def nested_norms(kernel, scheme):
    """``||k_j(G_n)||`` of a canonical square conv kernel, as numpy ``(out, n_groups)``."""
    return np.sqrt(_np(groups.nested_group_sq_norms(np.asarray(kernel, "float32"), scheme)))


def alive_kernels(kernel, tau):
    """Output kernels whose norm exceeds ``tau`` (eq. 11/15): the channels that stay."""
    return kernel_norms(kernel) > tau


def kernel_sizes(kernel, tau, scheme):
    """Learned side length of each output kernel under a nested ``scheme`` (eq. 20)."""
    kernel = np.asarray(kernel, "float32")
    zeroed = groups.zeroed_group_count(nested_norms(kernel, scheme), tau)
    return groups.learned_sizes(zeroed, kernel.shape[0], scheme)


def keep_mask(kernel, tau, scheme):
    """Entry mask (same shape as the canonical ``kernel``) that is 0 on every group with norm ``<= tau``.

    For nested schemes the largest group below ``tau`` is zeroed, which zeroes all smaller ones too.
    """
    kernel = np.asarray(kernel, "float32")
    check_scheme(scheme)
    if scheme == "kernel":
        return np.broadcast_to(alive_kernels(kernel, tau), kernel.shape).astype("float32")
    if scheme == "filter":
        keep = np.sqrt(_np(groups.filter_group_sq_norms(kernel))) > tau
        if kernel.ndim > 2:
            keep = keep.reshape((1,) * (kernel.ndim - 2) + keep.shape)
        return np.broadcast_to(keep, kernel.shape).astype("float32")
    zeroed = groups.zeroed_group_count(nested_norms(kernel, scheme), tau)
    masks = groups.nested_masks(scheme, kernel.shape[0])
    # Row 0 stands for "nothing zeroed"; row m for the support of G_m.
    drop = np.concatenate([np.zeros_like(masks[:1]), masks])[zeroed]  # (out, s, s)
    keep = 1.0 - np.transpose(drop, (1, 2, 0)).astype("float32")  # (s, s, out)
    return np.broadcast_to(keep[:, :, None, :], kernel.shape).astype("float32")

"""Group structure of convolution and dense kernels, and their group norms.

Every structured-sparsity piece of the library (regularizers, thresholds, analysis, shrinking) reads
groups from here, so that "which entries form a group" is written once.

Kernels are in Keras layout: Conv2D ``(kh, kw, in, out)``, Conv1D ``(k, in, out)``, Dense ``(in, out)``.
A DepthwiseConv2D kernel ``(kh, kw, in, multiplier)`` is first brought to the conv layout with
:func:`canonical_kernel`, which makes each depthwise output channel an output kernel with one input channel.

Groups (the structured-sparsity paper):

* kernel group ``k_j``: everything that produces output channel ``j`` (eq. 12-13);
* filter group ``W_ij``: the 2-D filter between input ``i`` and output ``j`` (Kiaee et al.'s (2016) block);
  for Dense, one group per output column;
* nested half-ring groups ``G_1 ⊂ ... ⊂ G_s`` of a square ``s x s`` kernel, spanning all input channels
  (eq. 21-22): ``G_n = {(p, q): min(p, q) < ceil(n/2) or max(p, q) > s - 1 - floor(n/2)}``;
* nested ring groups ``R_1 ⊂ ... ⊂ R_ceil(s/2)``: the outer ``m`` full rings.
"""

import functools
import math

import numpy as np
from keras import ops

LAYOUTS = ("conv", "depthwise", "dense")
NESTED_SCHEMES = ("half_ring", "ring")


def canonical_shape(shape, layout="conv"):
    """The shape :func:`canonical_kernel` gives a kernel of ``shape`` in ``layout``."""
    shape = tuple(int(d) for d in shape)
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got layout={layout!r}")
    if layout != "depthwise":
        return shape
    if len(shape) != 4:
        raise ValueError(f"A depthwise kernel has rank 4 (kh, kw, in, mult); got shape {shape}")
    return (shape[0], shape[1], 1, shape[2] * shape[3])


def canonical_kernel(kernel, layout="conv"):
    """Returns ``kernel`` in the conv/dense layout the group functions expect.

    ``layout="depthwise"`` reshapes ``(kh, kw, in, mult)`` to ``(kh, kw, 1, in * mult)``: every depthwise
    output channel is then an output kernel with a single input channel, in Keras' output order.
    """
    shape = canonical_shape(kernel.shape, layout)
    return kernel if layout != "depthwise" else ops.reshape(kernel, shape)


def safe_sqrt(x):
    """``sqrt(x)`` for ``x >= 0`` whose gradient is 0 (a valid subgradient of the norm) at ``x == 0``.

    A plain ``sqrt`` has an infinite derivative at 0 and turns the gradient of a zeroed group into NaN.
    The double ``where`` keeps the untaken branch away from 0 so no NaN is formed even transiently.
    """
    positive = x > 0
    return ops.where(positive, ops.sqrt(ops.where(positive, x, ops.ones_like(x))), ops.zeros_like(x))


def kernel_group_sq_norms(kernel):
    """Squared l2 norm of each output kernel ``k_j``; shape ``(out,)``."""
    rank = len(kernel.shape)
    return ops.sum(ops.square(kernel), axis=tuple(range(rank - 1)))


def filter_group_sq_norms(kernel):
    """Squared l2 norm of each filter ``W_ij``: shape ``(in, out)`` for convs, ``(out,)`` for Dense."""
    rank = len(kernel.shape)
    if rank == 2:
        return kernel_group_sq_norms(kernel)
    return ops.sum(ops.square(kernel), axis=tuple(range(rank - 2)))


def kernel_group_size(shape):
    """Number of entries in one kernel group of a kernel of ``shape``."""
    return int(np.prod(shape[:-1]))


def filter_group_size(shape):
    """Number of entries in one filter group of a kernel of ``shape``."""
    return int(shape[0]) if len(shape) == 2 else int(np.prod(shape[:-2]))


@functools.lru_cache(maxsize=None)
def half_ring_masks(size):
    """Boolean masks ``(size, size, size)``: ``masks[n - 1]`` is the spatial support of ``G_n``.

    ``G_1`` is the top-left row+column pair, ``G_2`` adds the bottom-right pair of what is left, and so on
    alternating (our choice), until ``G_size`` is the whole kernel.
    """
    _check_size(size)
    p, q = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    low, high = np.minimum(p, q), np.maximum(p, q)
    masks = [(low < math.ceil(n / 2)) | (high > size - 1 - n // 2) for n in range(1, size + 1)]
    masks = np.stack(masks)
    masks.flags.writeable = False
    return masks


@functools.lru_cache(maxsize=None)
def ring_masks(size):
    """Boolean masks ``(ceil(size/2), size, size)``: ``masks[m - 1]`` covers the outer ``m`` full rings."""
    _check_size(size)
    p, q = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    low, high = np.minimum(p, q), np.maximum(p, q)
    masks = np.stack([(low < m) | (high > size - 1 - m) for m in range(1, math.ceil(size / 2) + 1)])
    masks.flags.writeable = False
    return masks


def nested_masks(scheme, size):
    """The nested group masks of ``scheme`` (``"half_ring"`` or ``"ring"``) for a ``size x size`` kernel."""
    if scheme == "half_ring":
        return half_ring_masks(size)
    if scheme == "ring":
        return ring_masks(size)
    raise ValueError(f"scheme must be one of {NESTED_SCHEMES}, got scheme={scheme!r}")


def check_square_kernel(shape, scheme):
    """Raises ``ValueError`` unless ``shape`` is a conv kernel ``(s, s, in, out)`` usable by ``scheme``."""
    shape = tuple(int(d) for d in shape)
    if len(shape) != 4 or shape[0] != shape[1]:
        raise ValueError(
            f"The {scheme} kernel-size groups need a square 2-D convolution kernel (s, s, in, out); "
            f"got kernel shape {shape}"
        )


def nested_group_sq_norms(kernel, scheme):
    """Squared l2 norms of the nested groups of each output kernel; shape ``(out, n_groups)``.

    Each group spans all input channels, so the per-position energy summed over inputs is computed once
    and the nested sums are one small matrix product with the group masks.
    """
    shape = tuple(kernel.shape)
    check_square_kernel(shape, scheme)
    size, out = shape[0], shape[3]
    masks = nested_masks(scheme, size).reshape(-1, size * size).astype("float32")
    energy = ops.reshape(ops.sum(ops.square(kernel), axis=2), (size * size, out))
    masks = ops.convert_to_tensor(masks, dtype=energy.dtype)
    return ops.transpose(ops.matmul(masks, energy))


def nested_group_sizes(shape, scheme):
    """Number of entries ``|G_n|`` of each nested group (spatial support times input channels)."""
    check_square_kernel(shape, scheme)
    masks = nested_masks(scheme, int(shape[0]))
    return masks.reshape(len(masks), -1).sum(axis=1) * int(shape[2])


def zeroed_group_count(norms, tau):
    """For nested groups: ``m`` = the largest ``n`` with ``||k(G_n)|| <= tau`` (0 if none), per kernel.

    Zeroing ``G_m`` zeroes ``G_1 .. G_m`` too (the groups are nested), so ``m`` alone says what goes.
    ``norms`` is a numpy array ``(out, n_groups)``.
    """
    below = np.asarray(norms) <= tau
    n_groups = below.shape[1]
    # Index of the last True along the group axis, +1; 0 when no group is below tau.
    last = n_groups - np.argmax(below[:, ::-1], axis=1)
    return np.where(below.any(axis=1), last, 0)


def learned_sizes(zeroed, size, scheme):
    """Kernel side length left after zeroing ``zeroed`` nested groups (eq. 20 for rings)."""
    zeroed = np.asarray(zeroed)
    if scheme == "half_ring":
        return size - zeroed
    if scheme == "ring":
        return np.maximum(size - 2 * zeroed, 0)
    raise ValueError(f"scheme must be one of {NESTED_SCHEMES}, got scheme={scheme!r}")


def _check_size(size):
    if not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"Kernel size must be a positive integer, got size={size!r}")

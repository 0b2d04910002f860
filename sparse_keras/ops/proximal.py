"""Proximal operators of block sparsity penalties (Kiaee et al. 2016, eq. 9-10), in ``keras.ops``.

A block is the set of entries that share all indices outside ``axis``: with a Conv2D kernel
``(kh, kw, in, out)`` and ``axis=(0, 1)`` a block is one 2-D filter ``W_ij``; with ``axis=(0, 1, 2)`` it is
one output kernel; with a Dense kernel and ``axis=0`` it is one output column; ``axis=()`` makes every
entry its own block.
"""

from keras import ops

from sparse_keras.ops import groups


def block_norms(x, axis):
    """l2 norm of each block, with the block axes kept (size 1) so it broadcasts against ``x``."""
    x = ops.convert_to_tensor(x)
    axis = _axes(axis, len(x.shape))
    if not axis:
        return ops.abs(x)
    return groups.safe_sqrt(ops.sum(ops.square(x), axis=axis, keepdims=True))


def soft_threshold_groups(x, threshold, axis):
    """Group soft thresholding, the proximal operator of ``threshold * sum_blocks ||block||_2`` (eq. 9).

    Solves ``argmin_F 1/2 ||F - x||^2 + threshold * sum_b ||F_b||``: each block is shrunk towards zero by
    ``threshold`` in norm, ``F_b = (1 - threshold / ||x_b||)_+ x_b``, and a block with norm ``<= threshold``
    becomes exactly zero.
    """
    x = ops.convert_to_tensor(x)
    norms = block_norms(x, axis)
    safe = ops.where(norms > 0, norms, ops.ones_like(norms))
    scale = ops.maximum(1.0 - ops.cast(threshold, x.dtype) / safe, 0.0)
    return x * ops.where(norms > 0, scale, ops.zeros_like(scale))


def hard_threshold_groups(x, threshold, axis):
    """Group hard thresholding, the proximal operator of ``threshold^2 / 2 * #{nonzero blocks}`` (eq. 10).

    Solves ``argmin_F 1/2 ||F - x||^2 + threshold^2 / 2 * ||[||F_b||]_b||_0``: a block is kept unchanged if
    its norm exceeds ``threshold`` and set to zero otherwise.
    """
    x = ops.convert_to_tensor(x)
    keep = block_norms(x, axis) > ops.cast(threshold, x.dtype)
    return x * ops.cast(keep, x.dtype)


def _axes(axis, rank):
    if axis is None:
        return tuple(range(rank))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    bad = [a for a in axes if not -rank <= a < rank]
    if bad:
        raise ValueError(f"axis={axis!r} is out of range for a tensor of rank {rank}")
    return tuple(sorted(a % rank for a in axes))

"""Cropping conv kernels to their learned size with the padding that keeps every output identical.

The structured-sparsity paper (eq. 20-23) shrinks kernels from the outside in: a nested half-ring scheme leaves an
``s x s`` block starting at row/column ``ceil(m/2)``, a ring scheme a centred one. Both are a *bounding box*
of the kernel's non-zero support, which is what this module works with, so any zero border crops.

Output position ``o`` of the original conv reads input rows ``o*S - top + r*d`` for kernel rows ``r``.
Keeping rows ``a .. a+s-1`` reads the same inputs with ``top' = top - a*d`` and enough bottom padding for
the same number of outputs; ``top'`` may be negative (crop the input) and needs no symmetry, which is how
even sizes keep 'same' alignment (the paper's asymmetric padding ``P - ceil(m/2)`` / ``P - floor(m/2)``).
"""

import dataclasses
import math

import numpy as np


@dataclasses.dataclass(frozen=True)
class Box:
    """Rows ``top .. bottom - 1`` and columns ``left .. right - 1`` of a kernel."""

    top: int
    left: int
    bottom: int
    right: int

    @property
    def size(self):
        return (self.bottom - self.top, self.right - self.left)

    def union(self, other):
        return Box(
            min(self.top, other.top), min(self.left, other.left), max(self.bottom, other.bottom), max(self.right, other.right)
        )

    def crop(self, kernel):
        return kernel[self.top : self.bottom, self.left : self.right]


def support_boxes(kernel):
    """Bounding box of the non-zero entries of each output kernel of a ``(kh, kw, in, out)`` array;
    ``None`` for an all-zero kernel."""
    boxes = []
    for j in range(kernel.shape[-1]):
        nonzero = kernel[..., j].reshape(kernel.shape[0], kernel.shape[1], -1).any(axis=2)
        rows, cols = np.flatnonzero(nonzero.any(axis=1)), np.flatnonzero(nonzero.any(axis=0))
        boxes.append(Box(rows[0], cols[0], rows[-1] + 1, cols[-1] + 1) if len(rows) else None)
    return boxes


def centre_box(kernel_size):
    """A 1x1 box in the kernel's centre: where an all-zero kernel (which only emits its bias) goes."""
    r, c = (kernel_size[0] - 1) // 2, (kernel_size[1] - 1) // 2
    return Box(r, c, r + 1, c + 1)


def union_box(boxes, kernel_size):
    """The smallest box holding every non-empty box (the centre 1x1 box if all are empty)."""
    present = [b for b in boxes if b is not None]
    if not present:
        return centre_box(kernel_size)
    box = present[0]
    for other in present[1:]:
        box = box.union(other)
    return box


def group_by_box(boxes, kernel_size):
    """``{box: [output index, ...]}``; all-zero kernels join the largest group (they only emit a bias)."""
    groups = {}
    for j, box in enumerate(boxes):
        if box is not None:
            groups.setdefault(box, []).append(j)
    empty = [j for j, box in enumerate(boxes) if box is None]
    if empty:
        if not groups:
            return {centre_box(kernel_size): empty}
        largest = max(groups, key=lambda b: len(groups[b]))
        groups[largest] = sorted(groups[largest] + empty)
    return groups


def axis_padding(n, kernel, stride, dilation, padding, start, size):
    """Padding ``(before, after)`` of one spatial axis for a kernel cropped to ``start .. start+size-1``.

    ``n`` is the input length (``None`` if unknown: then only stride 1 can be cropped). Negative values
    mean cropping the input. Returns ``None`` if the crop cannot be expressed.
    """
    extent = (kernel - 1) * dilation + 1
    if n is None:
        if stride != 1:
            return None
        top = (extent - 1) // 2 if padding == "same" else 0
        bottom = extent - 1 - top if padding == "same" else 0
        # Dropping the last kernel - start - size rows reads that many fewer rows past each output.
        return top - start * dilation, bottom - (kernel - start - size) * dilation
    out = math.ceil(n / stride) if padding == "same" else (n - extent) // stride + 1
    top = max((out - 1) * stride + extent - n, 0) // 2 if padding == "same" else 0
    new_top = top - start * dilation
    # Just enough rows after the input for the same number of outputs.
    return new_top, (out - 1) * stride + (size - 1) * dilation + 1 - n - new_top


def keras_padding(n, size, stride, dilation, before, after):
    """``"same"`` or ``"valid"`` if Keras' own padding of a ``size`` kernel reads the same rows as the
    explicit ``(before, after)``; else ``None`` (an explicit ZeroPadding2D / Cropping2D is needed)."""
    extent = (size - 1) * dilation + 1
    if before == 0 and -stride < after <= 0:
        return "valid"
    if n is None:
        same = (extent - 1) // 2, extent - 1 - (extent - 1) // 2
        return "same" if stride == 1 and (before, after) == same else None
    out = (n + before + after - extent) // stride + 1
    total = max((out - 1) * stride + extent - n, 0)
    return "same" if before == total // 2 and out == math.ceil(n / stride) else None

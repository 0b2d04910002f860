"""Convolutional sparse coding as differentiable ops: unrolled FISTA and the synthesis operator ``A(z)``.

:class:`~sparse_keras.layers.CSCConv2D` (Dai et al. 2022) codes its input with :func:`fista`; its synthesis is
:func:`phase_synthesis` (stride-1 convolutions, fast to differentiate under XLA) or the textbook
:func:`transposed_synthesis`, the same linear map.
"""
import math

from keras import ops

from sparse_keras.ops import proximal


def fista(x, analysis, synthesis, step, threshold, n_iter, non_negative=True):
    """Unrolled FISTA for ``argmin_z lam ||z||_1 + 1/2 ||x - A(z)||^2`` (Dai et al. 2022 eq. A.1), ``z0 = 0``.

    ``z_l = T(y_l + t A*(x - A(y_l)))``, ``m_{l+1} = (1 + sqrt(1 + 4 m_l^2)) / 2``,
    ``y_{l+1} = z_l + (m_l - 1) / m_{l+1} (z_l - z_{l-1})`` with ``y_1 = 0``, ``m_1 = 1``; ``T`` is the soft
    threshold at ``threshold = lam t`` (eq. A.3), followed by a ReLU for non-negative codes. The momentum is
    a Python float sequence: the loop is unrolled, so every iteration is part of the differentiated graph.
    """

    def shrink(u):
        if non_negative:
            return ops.relu(u - threshold)  # soft threshold then ReLU == max(u - lam t, 0)
        return proximal.soft_threshold_groups(u, threshold, axis=())

    z = shrink(step * analysis(x))  # y_1 = 0: A(y_1) = 0 needs no synthesis; z_0 = 0 makes y_2 = z_1
    y, z_prev, m = z, z, (1.0 + math.sqrt(5.0)) / 2.0  # m_2
    for iteration in range(2, n_iter + 1):
        z = shrink(y + step * analysis(x - synthesis(y)))
        if iteration < n_iter:
            m_next = (1.0 + math.sqrt(1.0 + 4.0 * m * m)) / 2.0
            y = z + ((m - 1.0) / m_next) * (z - z_prev)
            z_prev, m = z, m_next
    return z


def transposed_synthesis(z, kernel, strides, output_size):
    """``A(z)`` by its definition: a 'valid' transposed convolution of ``z`` with ``kernel`` at ``strides``,
    cropped by ``p = (k - 1) // 2`` at the top/left (what the analysis padding added) and cut or zero-extended
    to ``output_size`` at the bottom/right (rows a stride skipped). The reference of :func:`phase_synthesis`."""
    height, width = output_size
    full = ops.conv_transpose(z, kernel, strides=strides, padding="valid")
    p = (kernel.shape[0] - 1) // 2
    full_height, full_width = full.shape[1], full.shape[2]
    extra_h, extra_w = max(0, p + height - full_height), max(0, p + width - full_width)
    if extra_h or extra_w:
        full = ops.pad(full, ((0, 0), (0, extra_h), (0, extra_w), (0, 0)))
    return full[:, p : p + height, p : p + width, :]


def phase_synthesis(z, kernel, strides, output_size):
    """:func:`transposed_synthesis` as ``strides**2`` stride-1 'valid' convolutions, one per output phase.

    Padded-input row ``u = s m + a`` of the transposed convolution is ``sum_j z[m - j] k[s j + a]``: a
    stride-1 correlation of ``z`` with the taps ``a, a + s, ...`` of the kernel, reversed (and input / output
    channels swapped). The ``s x s`` phases are interleaved by stack + reshape. Only rows and columns inside
    the output are computed. Why not ``conv_transpose``: XLA on CPU lowers the kernel gradient of a
    transposed (input-dilated, kernel-reversed) convolution to a naive loop, 20-50x slower than a
    convolution's; here every gradient is that of a plain stride-1 convolution (the cost that made SDNet
    train ~7x slower on JAX than on TensorFlow).
    """
    s, k = int(strides), kernel.shape[0]
    flipped = ops.flip(ops.transpose(kernel, (0, 1, 3, 2)), axis=(0, 1))  # flipped[i] = k[k - 1 - i], (., ., F, C)
    rows = _PhaseGeometry(k, s, int(z.shape[1]), int(output_size[0]))
    cols = _PhaseGeometry(k, s, int(z.shape[2]), int(output_size[1]))
    phases = {}
    for a, (taps_a, z_rows, pad_rows) in enumerate(rows.phases):
        for b, (taps_b, z_cols, pad_cols) in enumerate(cols.phases):
            if taps_a and taps_b:
                # Taps a, a + s, ..., reversed: rows k - 1 - a - s (taps - 1), ..., k - 1 - a of the flipped kernel.
                sub = flipped[k - 1 - a - s * (taps_a - 1) : k - a : s, k - 1 - b - s * (taps_b - 1) : k - b : s]
                part = z[:, z_rows[0] : z_rows[1], z_cols[0] : z_cols[1], :]
                part = ops.pad(part, ((0, 0), pad_rows, pad_cols, (0, 0)))
                phases[a, b] = ops.conv(part, sub, strides=1, padding="valid")
    if s == 1:
        full = phases[0, 0]
    else:
        zeros = ops.zeros_like(next(iter(phases.values())))  # phases without taps (k < s)
        channels, interleaved = kernel.shape[2], []
        for a in range(s):
            row = ops.stack([phases.get((a, b), zeros) for b in range(s)], axis=3)
            interleaved.append(ops.reshape(row, (-1, rows.length, s * cols.length, channels)))
        full = ops.reshape(ops.stack(interleaved, axis=2), (-1, s * rows.length, s * cols.length, channels))
    return full[:, rows.offset : rows.offset + output_size[0], cols.offset : cols.offset + output_size[1], :]


class _PhaseGeometry:
    """Along one axis: which code rows each output phase reads (see :func:`phase_synthesis`).

    Output row ``i`` is padded-input row ``u = i + p``; the phases cover ``u = s m + a`` for ``m`` in
    ``[m0, m0 + length)``, the fewest whole periods containing ``[p, p + size)``; ``offset = p - s m0``.
    ``phases[a] = (taps, (first, stop) code rows, (pad before, pad after))``.
    """

    def __init__(self, k, s, code_size, size):
        p = (k - 1) // 2
        m0 = p // s
        self.length = -(-(p + size) // s) - m0
        self.offset = p - s * m0
        self.phases = []
        for a in range(s):
            taps = len(range(a, k, s))
            start, stop = m0 - taps + 1, m0 + self.length  # code rows read; outside [0, code_size) are zeros
            first, last = max(0, start), max(max(0, start), min(code_size, stop))
            before = first - start
            self.phases.append((taps, (first, last), (before, stop - start - before - (last - first))))

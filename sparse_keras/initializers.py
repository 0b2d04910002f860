"""DCT initializers for LST-Net's learnable transforms (Li et al. 2020).

LST-Net starts its channel transform T_c and its spatial transform T_s at the 2-D DCT, then lets SGD move
them (nothing is frozen). The official code builds every DCT matrix with one helper, ``dct_init(m, n)``,
whose orientation depends on whether the transform shrinks or grows its input; :func:`dct_matrix` keeps
those exact semantics so that the Keras kernels start where the PyTorch ones do:

* ``m < n`` (reducing): the first ``m`` rows of the ``n``-point orthonormal DCT-II, i.e. *analysis* keeping
  the ``m`` lowest frequencies;
* ``m >= n`` (square or growing): the first ``n`` columns of the transposed ``m``-point DCT-II, i.e.
  *synthesis* (inverse DCT) from ``n`` coefficients; for ``m == n`` the full orthonormal inverse DCT.

The DCT itself comes from ``scipy.fft.dct`` (type II, ``norm="ortho"``) applied to the identity.
"""

import math

import keras
import numpy as np
import scipy.fft

from sparse_keras.utils import checks


def dct_basis(num_basis, size):
    """The first ``num_basis`` orthonormal DCT-II basis vectors of length ``size``, as rows.

    Row ``u`` is ``alpha_u * cos(pi * u * (2n + 1) / (2 * size))`` with ``alpha_0 = sqrt(1/size)`` and
    ``alpha_u = sqrt(2/size)``: ``dct_basis(size, size)`` is the orthogonal DCT-II matrix ``C`` with
    ``C @ x == scipy.fft.dct(x, norm="ortho")``. Returns a float64 array ``(num_basis, size)``.
    """
    size = checks.positive_int("size", size)
    num_basis = checks.positive_int("num_basis", num_basis)
    if num_basis > size:
        raise ValueError(f"num_basis must be at most size={size} (the number of basis vectors), got num_basis={num_basis}")
    return scipy.fft.dct(np.eye(size), type=2, norm="ortho", axis=0)[:num_basis]


def dct_matrix(rows, cols):
    """The official ``dct_init(rows, cols)``: a ``(rows, cols)`` matrix used as ``weight[out, in]``.

    Reducing (``rows < cols``): the ``rows`` lowest-frequency DCT-II analysis rows of length ``cols``.
    Otherwise: the first ``cols`` columns of the ``rows``-point inverse DCT (synthesis). Either way the
    smaller side is orthonormal: ``M @ M.T == I`` when reducing, ``M.T @ M == I`` otherwise.
    """
    if rows < cols:
        return dct_basis(rows, cols)
    return dct_basis(cols, rows).T


def separable_dct_filters(a, kernel_size):
    """The ``a * a`` separable 2-D DCT filters of T_s (the paper's eq. 4), shape ``(k, k, a * a)``.

    With ``D = dct_matrix(a, k)`` (rows: the ``a`` lowest 1-D frequencies of length ``k`` when ``a < k``),
    filter ``i * a + j`` is ``F[y, x] = D[i, x] * D[j, y]``: horizontal frequency ``i``, vertical ``j``, the
    order of the official ``weight3``.
    """
    d = dct_matrix(checks.positive_int("a", a), checks.positive_int("kernel_size", kernel_size))
    # filters[y, x, i, j] = d[i, x] * d[j, y]
    filters = np.einsum("ix,jy->yxij", d, d)
    return filters.reshape(kernel_size, kernel_size, a * a)


@keras.saving.register_keras_serializable(package="sparse_keras")
class ChannelDCT(keras.initializers.Initializer):
    """Initialises a 1x1 conv kernel ``(1, 1, in, out)`` to the channel transform T_c of LST-Net.

    ``kernel[0, 0, i, o] = dct_matrix(out, in)[o, i]``: the Keras layout of the PyTorch ``weight[o, i]``.
    """

    def __call__(self, shape, dtype=None):
        shape = tuple(shape)
        if len(shape) != 4 or shape[:2] != (1, 1):
            raise ValueError(f"ChannelDCT initialises 1x1 conv kernels (1, 1, in, out); got shape={shape!r}")
        matrix = dct_matrix(shape[3], shape[2]).T  # (in, out)
        return keras.ops.convert_to_tensor(matrix.reshape(shape), dtype=dtype or keras.config.floatx())

    def get_config(self):
        return {}


@keras.saving.register_keras_serializable(package="sparse_keras")
class SpatialDCT(keras.initializers.Initializer):
    """Initialises a depthwise kernel ``(k, k, channels, a * a)`` to the spatial transform T_s of LST-Net.

    Every channel gets the same ``a * a`` separable DCT filters (:func:`separable_dct_filters`); the
    official T_s holds them once, shape ``(k, k, 1, a * a)``, and repeats them over channels.
    """

    def __call__(self, shape, dtype=None):
        shape = tuple(shape)
        if len(shape) != 4 or shape[0] != shape[1]:
            raise ValueError(f"SpatialDCT initialises square depthwise kernels (k, k, channels, a*a), got shape={shape!r}")
        a = math.isqrt(shape[3])
        if a * a != shape[3]:
            raise ValueError(f"SpatialDCT needs a*a filters per channel (a perfect square); got shape={shape!r}")
        filters = separable_dct_filters(a, shape[0])[:, :, None, :]
        value = np.broadcast_to(filters, shape)
        return keras.ops.convert_to_tensor(np.ascontiguousarray(value), dtype=dtype or keras.config.floatx())

    def get_config(self):
        return {}

"""Block proximal operators (Kiaee et al. 2016 eq. 9-10): closed forms and properties."""

import hypothesis.extra.numpy as hnp
import keras
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sparse_keras.ops import proximal

kernels = hnp.arrays(
    np.float32,
    hnp.array_shapes(min_dims=4, max_dims=4, min_side=1, max_side=4),
    # Subnormals are excluded: TensorFlow flushes them to zero on CPU, which is not what is tested here.
    elements=st.floats(-3, 3, width=32, allow_subnormal=False),
)
thresholds = st.floats(0.0, 4.0)


def np_(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def filter_norms(x):
    return np.sqrt((x.astype("float64") ** 2).sum(axis=(0, 1), keepdims=True))


@settings(max_examples=30, deadline=None)
@given(kernels, thresholds)
def test_soft_threshold_shrinks_each_filter_norm_by_the_threshold(x, t):
    out = np_(proximal.soft_threshold_groups(x, t, axis=(0, 1)))
    norms = filter_norms(x)
    expected = x * np.where(norms > t, 1 - t / np.where(norms > 0, norms, 1), 0)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    assert np.all(out[np.broadcast_to(norms <= t, x.shape)] == 0)  # exactly zero, not tiny


@settings(max_examples=30, deadline=None)
@given(kernels, thresholds)
@example(np.full((1, 1, 1, 1), 1.0213616e-21, np.float32), 0.0)  # its square is a float32 subnormal
def test_hard_threshold_keeps_or_zeroes_whole_filters_and_is_idempotent(x, t):
    out = np_(proximal.hard_threshold_groups(x, t, axis=(0, 1)))
    # float32 norms, as the operator computes them. A square below float32's smallest normal number is a
    # subnormal in numpy but may be flushed to zero on a CPU (XLA, TensorFlow's kernels): a block whose
    # verdict depends on that may be kept or zeroed, whole either way.
    squares = x**2
    flushed = np.where(squares < np.finfo(np.float32).tiny, np.float32(0), squares)
    above = np.sqrt(squares.sum(axis=(0, 1), keepdims=True)) > t
    unsure = above != (np.sqrt(flushed.sum(axis=(0, 1), keepdims=True)) > t)
    keep = np.broadcast_to(above & ~unsure, x.shape)
    drop = np.broadcast_to(~above & ~unsure, x.shape)
    np.testing.assert_array_equal(out[keep], x[keep])
    assert np.all(out[drop] == 0)
    for i, j in np.argwhere(unsure[0, 0]):
        assert np.array_equal(out[:, :, i, j], x[:, :, i, j]) or not out[:, :, i, j].any()
    np.testing.assert_array_equal(np_(proximal.hard_threshold_groups(out, t, axis=(0, 1))), out)


@settings(max_examples=20, deadline=None)
@given(kernels, thresholds)
def test_soft_threshold_solves_its_optimisation_problem(x, t):
    # prox is the minimiser: no random perturbation of it has a lower objective.
    def objective(f):
        return 0.5 * ((f - x) ** 2).sum() + t * filter_norms(f).sum()

    best = np_(proximal.soft_threshold_groups(x, t, axis=(0, 1))).astype("float64")
    rng = np.random.default_rng(0)
    for _ in range(10):
        assert objective(best) <= objective(best + 1e-2 * rng.normal(size=x.shape)) + 1e-6


def test_element_blocks_are_plain_soft_thresholding():
    x = np.array([-2.0, -0.5, 0.0, 0.3, 1.5], "float32")
    np.testing.assert_allclose(np_(proximal.soft_threshold_groups(x, 0.5, axis=())), [-1.5, 0, 0, 0, 1.0])


def test_dense_column_blocks():
    x = np.array([[3.0, 0.1], [4.0, 0.1]], "float32")  # column norms 5 and 0.14
    out = np_(proximal.soft_threshold_groups(x, 1.0, axis=0))
    np.testing.assert_allclose(out, [[2.4, 0], [3.2, 0]], rtol=1e-6)


def test_bad_axis_names_the_axis():
    with pytest.raises(ValueError, match="axis=5"):
        proximal.block_norms(np.ones((2, 2)), 5)

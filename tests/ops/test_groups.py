"""Group math of `sparse_keras.ops.groups` against the papers' definitions.

Every reference here is written from the spec's formulas with plain Python loops over (p, q), never with the
library's own masks, so a wrong mask or a wrong axis fails the test.
"""

import math

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparse_keras import testing
from sparse_keras.ops import groups


# -- independent references ---------------------------------------------------------------
def spec_half_ring(s, n):
    """G_n = {(p, q): min(p, q) < ceil(n/2) or max(p, q) > s - 1 - floor(n/2)} as an (s, s) 0/1 array."""
    t_n, b_n = math.ceil(n / 2), n // 2
    mask = np.zeros((s, s), dtype=bool)
    for p in range(s):
        for q in range(s):
            mask[p, q] = min(p, q) < t_n or max(p, q) > s - 1 - b_n
    return mask


def peeled_half_rings(s):
    """The spec's "equivalently": G_n is G_{n-1} plus the outermost remaining pair, top-left for odd n,
    bottom-right for even n. Built by peeling a shrinking square, independently of the min/max formula."""
    mask, lo, hi, masks = np.zeros((s, s), dtype=bool), 0, s - 1, []
    for n in range(1, s + 1):
        edge = lo if n % 2 == 1 else hi
        mask = mask.copy()
        mask[edge, lo : hi + 1] = True  # the row of the pair, inside the remaining square
        mask[lo : hi + 1, edge] = True  # and its column
        if n % 2 == 1:
            lo += 1
        else:
            hi -= 1
        masks.append(mask)
    return masks


def spec_ring(s, m):
    """R_m = {(p, q): min(p, q) < m or max(p, q) > s - 1 - m}: the outer m full rings."""
    mask = np.zeros((s, s), dtype=bool)
    for p in range(s):
        for q in range(s):
            mask[p, q] = min(p, q) < m or max(p, q) > s - 1 - m
    return mask


def numpy_nested_sq_norms(kernel, masks):
    """sum over (p, q) in G_n and every input channel r of k[p, q, r, j]^2; shape (out, n_groups)."""
    s, _, c_in, out = kernel.shape
    result = np.zeros((out, len(masks)))
    for j in range(out):
        for n, mask in enumerate(masks):
            for p in range(s):
                for q in range(s):
                    if mask[p, q]:
                        result[j, n] += sum(float(kernel[p, q, r, j]) ** 2 for r in range(c_in))
    return result


to_numpy = testing.to_numpy
grad = testing.gradient


# -- half-ring masks ---------------------------------------------------------------------------------
SIZES = range(1, 8)


def test_half_ring_masks_follow_the_min_max_definition():
    for s in SIZES:
        masks = groups.half_ring_masks(s)
        assert masks.shape == (s, s, s)
        for n in range(1, s + 1):
            np.testing.assert_array_equal(masks[n - 1], spec_half_ring(s, n), err_msg=f"s={s} G_{n}")


def test_half_ring_masks_add_one_pair_at_a_time_starting_top_left():
    for s in SIZES:
        for n, expected in enumerate(peeled_half_rings(s), start=1):
            np.testing.assert_array_equal(groups.half_ring_masks(s)[n - 1], expected, err_msg=f"s={s} G_{n}")


@pytest.mark.parametrize(
    "s, sizes",
    [(3, [5, 8, 9]), (5, [9, 16, 21, 24, 25]), (7, [13, 24, 33, 40, 45, 48, 49])],
)
def test_half_ring_group_sizes_per_input_channel_match_the_spec(s, sizes):
    assert groups.half_ring_masks(s).reshape(s, -1).sum(axis=1).tolist() == sizes
    for c_in in (1, 3):
        assert list(groups.nested_group_sizes((s, s, c_in, 2), "half_ring")) == [c_in * n for n in sizes]


def test_half_ring_g1_is_the_top_left_pair_and_g2_adds_the_bottom_right_pair():
    g1, g2, g3 = groups.half_ring_masks(3)
    np.testing.assert_array_equal(g1, [[1, 1, 1], [1, 0, 0], [1, 0, 0]])
    np.testing.assert_array_equal(g2, [[1, 1, 1], [1, 0, 1], [1, 1, 1]])
    np.testing.assert_array_equal(g3, np.ones((3, 3)))


@pytest.mark.parametrize("scheme", ["half_ring", "ring"])
def test_nested_masks_are_nested_and_the_last_is_the_whole_kernel(scheme):
    for s in SIZES:
        masks = groups.nested_masks(scheme, s)
        for smaller, larger in zip(masks[:-1], masks[1:]):
            assert np.all(larger[smaller]), f"s={s}: G_n must contain G_(n-1)"
            assert larger.sum() > smaller.sum(), f"s={s}: each group must add entries"
        assert masks[-1].all()


def test_masks_are_read_only_so_the_cache_cannot_be_corrupted():
    with pytest.raises(ValueError):
        groups.half_ring_masks(3)[0, 1, 1] = True
    with pytest.raises(ValueError):
        groups.ring_masks(3)[0, 1, 1] = True


# -- ring masks --------------------------------------------------------------------------------------
def test_ring_masks_are_the_outer_m_rings():
    for s in SIZES:
        masks = groups.ring_masks(s)
        assert masks.shape == (math.ceil(s / 2), s, s)
        for m in range(1, math.ceil(s / 2) + 1):
            np.testing.assert_array_equal(masks[m - 1], spec_ring(s, m), err_msg=f"s={s} R_{m}")
            assert masks[m - 1].sum() == s * s - max(s - 2 * m, 0) ** 2


def test_ring_groups_of_a_5x5_kernel():
    assert list(groups.nested_group_sizes((5, 5, 2, 4), "ring")) == [32, 48, 50]
    np.testing.assert_array_equal(groups.ring_masks(5)[0][1:4, 1:4], np.zeros((3, 3)))
    assert groups.ring_masks(5)[0].sum() == 16


def test_masks_reject_a_size_that_is_not_a_positive_integer():
    for size in (0, -1, 2.0, "3", None):
        with pytest.raises(ValueError, match=f"size={size!r}"):
            groups.half_ring_masks(size)
        with pytest.raises(ValueError, match=f"size={size!r}"):
            groups.ring_masks(size)


def test_unknown_scheme_is_rejected_by_name():
    with pytest.raises(ValueError, match="'spiral'"):
        groups.nested_masks("spiral", 3)
    with pytest.raises(ValueError, match="'spiral'"):
        groups.learned_sizes([0], 3, "spiral")


# -- group squared norms on random kernels -----------------------------------------------------------
def test_kernel_group_sq_norms_are_the_energy_of_each_output_kernel():
    for shape in [(3, 3, 4, 5), (5, 5, 2, 3), (1, 3, 2, 2), (3, 4, 6), (7, 5)]:
        kernel = np.random.randn(*shape).astype("float32")
        expected = [np.sum(kernel[..., j].astype("float64") ** 2) for j in range(shape[-1])]
        np.testing.assert_allclose(to_numpy(groups.kernel_group_sq_norms(kernel)), expected, rtol=1e-5)
        assert groups.kernel_group_size(shape) == int(np.prod(shape[:-1]))


def test_filter_group_sq_norms_are_the_energy_of_each_2d_filter():
    for shape in [(3, 3, 4, 5), (1, 3, 2, 2), (3, 4, 6)]:
        kernel = np.random.randn(*shape).astype("float32")
        c_in, out = shape[-2], shape[-1]
        expected = np.zeros((c_in, out))
        for i in range(c_in):
            for j in range(out):
                expected[i, j] = np.sum(kernel[..., i, j].astype("float64") ** 2)
        np.testing.assert_allclose(to_numpy(groups.filter_group_sq_norms(kernel)), expected, rtol=1e-5)
        assert groups.filter_group_size(shape) == int(np.prod(shape[:-2]))


def test_filter_groups_of_a_dense_kernel_are_its_output_columns():
    kernel = np.random.randn(6, 4).astype("float32")
    np.testing.assert_allclose(
        to_numpy(groups.filter_group_sq_norms(kernel)), (kernel.astype("float64") ** 2).sum(axis=0), rtol=1e-5
    )
    assert groups.filter_group_size((6, 4)) == 6


@pytest.mark.parametrize("scheme, spec_mask", [("half_ring", spec_half_ring), ("ring", spec_ring)])
def test_nested_group_sq_norms_sum_each_group_over_all_input_channels(scheme, spec_mask):
    for s in (1, 3, 4, 5, 7):
        kernel = np.random.randn(s, s, 3, 4).astype("float32")
        n_groups = s if scheme == "half_ring" else math.ceil(s / 2)
        expected = numpy_nested_sq_norms(kernel, [spec_mask(s, n) for n in range(1, n_groups + 1)])
        actual = to_numpy(groups.nested_group_sq_norms(kernel, scheme))
        assert actual.shape == (4, n_groups)
        np.testing.assert_allclose(actual, expected, rtol=1e-5, err_msg=f"s={s}")
        # The last group is the whole kernel: its norm is the kernel group's norm.
        np.testing.assert_allclose(actual[:, -1], to_numpy(groups.kernel_group_sq_norms(kernel)), rtol=1e-5)


@pytest.mark.parametrize("scheme", ["half_ring", "ring"])
def test_nested_groups_need_a_square_2d_conv_kernel_and_say_which_shape_was_given(scheme):
    for shape in [(3, 5, 2, 2), (3, 3, 2), (4, 4), (3, 3, 3, 2, 2)]:
        with pytest.raises(ValueError, match=f"got kernel shape {re_escape(shape)}"):
            groups.nested_group_sq_norms(np.zeros(shape, "float32"), scheme)
        with pytest.raises(ValueError, match=re_escape(shape)):
            groups.nested_group_sizes(shape, scheme)


def re_escape(shape):
    import re

    return re.escape(str(tuple(shape)))


# -- depthwise kernels -------------------------------------------------------------------------------
def test_canonical_depthwise_kernel_makes_each_output_channel_a_one_input_kernel():
    kernel = np.random.randn(3, 3, 4, 2).astype("float32")
    canonical = to_numpy(groups.canonical_kernel(kernel, "depthwise"))
    assert canonical.shape == (3, 3, 1, 8) == groups.canonical_shape(kernel.shape, "depthwise")
    # Keras orders depthwise outputs as (input channel c, multiplier m) -> c * mult + m.
    for c in range(4):
        for m in range(2):
            np.testing.assert_array_equal(canonical[:, :, 0, c * 2 + m], kernel[:, :, c, m])


def test_depthwise_group_norms_are_per_input_channel_and_multiplier():
    kernel = np.random.randn(5, 5, 3, 2).astype("float32")
    canonical = groups.canonical_kernel(kernel, "depthwise")
    expected_kernel = [np.sum(kernel[:, :, c, m].astype("float64") ** 2) for c in range(3) for m in range(2)]
    np.testing.assert_allclose(to_numpy(groups.kernel_group_sq_norms(canonical)), expected_kernel, rtol=1e-5)
    masks = [spec_half_ring(5, n) for n in range(1, 6)]
    expected_nested = numpy_nested_sq_norms(to_numpy(canonical), masks)
    np.testing.assert_allclose(
        to_numpy(groups.nested_group_sq_norms(canonical, "half_ring")), expected_nested, rtol=1e-5
    )
    for c in range(3):
        for m in range(2):
            g1 = np.sum(kernel[:, :, c, m].astype("float64")[masks[0]] ** 2)
            np.testing.assert_allclose(expected_nested[c * 2 + m, 0], g1, rtol=1e-6)


@pytest.mark.parametrize("layout", ["conv", "dense"])
def test_canonical_kernel_leaves_conv_and_dense_kernels_alone(layout):
    kernel = np.random.randn(3, 3, 2, 4).astype("float32")
    np.testing.assert_array_equal(to_numpy(groups.canonical_kernel(kernel, layout)), kernel)
    assert groups.canonical_shape((7, 5), layout) == (7, 5)


def test_canonical_shape_rejects_unknown_layouts_and_non_rank4_depthwise_kernels():
    with pytest.raises(ValueError, match="'transposed'"):
        groups.canonical_shape((3, 3, 2, 2), "transposed")
    with pytest.raises(ValueError, match=re_escape((3, 2, 2))):
        groups.canonical_shape((3, 2, 2), "depthwise")


# -- thresholding: zeroed groups and learned sizes ---------------------------------------------------
def test_zeroed_group_count_is_the_largest_n_whose_norm_is_at_most_tau():
    norms = np.array(
        [
            [1.0, 2.0, 3.0],  # nothing below tau
            [0.0, 2.0, 3.0],  # G_1 only
            [0.0, 0.0, 3.0],  # G_1, G_2
            [5.0, 1e-4, 3.0],  # G_2 below tau although G_1 is not: m = 2, G_1 goes with it
            [0.0, 0.0, 1e-3],  # exactly tau counts as zero: the whole kernel
        ]
    )
    np.testing.assert_array_equal(groups.zeroed_group_count(norms, tau=1e-3), [0, 1, 2, 2, 3])


def test_learned_sizes_half_ring_is_s_minus_m_and_can_be_even():
    sizes = groups.learned_sizes([0, 1, 2, 3, 4, 5], 5, "half_ring")
    np.testing.assert_array_equal(sizes, [5, 4, 3, 2, 1, 0])


def test_learned_sizes_ring_is_s_minus_2m_clipped_at_zero():
    np.testing.assert_array_equal(groups.learned_sizes([0, 1, 2, 3], 5, "ring"), [5, 3, 1, 0])
    np.testing.assert_array_equal(groups.learned_sizes([0, 1, 2], 3, "ring"), [3, 1, 0])


def remaining_square_side(mask):
    """Side of the surviving support (complement of the zeroed group), checking it is a full square."""
    rows, cols = np.nonzero(~mask)
    if rows.size == 0:
        return 0
    side = rows.max() - rows.min() + 1
    assert cols.max() - cols.min() + 1 == side and rows.size == side * side, "support must be a square"
    return side


@st.composite
def nested_case(draw, scheme):
    s = draw(st.integers(1, 7))
    n_groups = s if scheme == "half_ring" else math.ceil(s / 2)
    c_in, out = draw(st.integers(1, 3)), draw(st.integers(1, 4))
    zeroed = draw(st.lists(st.integers(0, n_groups), min_size=out, max_size=out))
    seed = draw(st.integers(0, 2**31 - 1))
    return s, c_in, out, np.array(zeroed), seed


def zero_nested_groups(kernel, zeroed, masks):
    """Entries of magnitude in [0.5, 1] except G_m of kernel j, which is exactly zero."""
    kernel = kernel.copy()
    for j, m in enumerate(zeroed):
        if m:
            kernel[masks[m - 1], :, j] = 0.0
    return kernel


@pytest.mark.parametrize("scheme, spec_mask", [("half_ring", spec_half_ring), ("ring", spec_ring)])
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_zeroing_g_m_gives_exactly_m_zeroed_groups_and_the_matching_size(scheme, spec_mask, data):
    s, c_in, out, zeroed, seed = data.draw(nested_case(scheme))
    rng = np.random.default_rng(seed)
    shape = (s, s, c_in, out)
    kernel = (rng.uniform(0.5, 1.0, shape) * rng.choice([-1, 1], shape)).astype("float32")
    n_groups = s if scheme == "half_ring" else math.ceil(s / 2)
    masks = [spec_mask(s, n) for n in range(1, n_groups + 1)]
    kernel = zero_nested_groups(kernel, zeroed, masks)

    norms = np.sqrt(to_numpy(groups.nested_group_sq_norms(kernel, scheme)))
    # The groups below G_m are exactly zero; the others hold at least one entry of magnitude >= 0.5.
    assert np.all(norms[np.arange(n_groups)[None, :] < zeroed[:, None]] == 0.0)
    assert np.all(norms[np.arange(n_groups)[None, :] >= zeroed[:, None]] >= 0.5)

    m = groups.zeroed_group_count(norms, tau=1e-3)
    np.testing.assert_array_equal(m, zeroed)
    sizes = groups.learned_sizes(m, s, scheme)
    expected = [remaining_square_side(masks[k - 1]) if k else s for k in zeroed]
    np.testing.assert_array_equal(sizes, expected)
    assert np.all((0 <= sizes) & (sizes <= s))
    if scheme == "ring":
        assert all(size == 0 or size % 2 == s % 2 for size in sizes), "rings keep the parity of s"


@settings(max_examples=60, deadline=None)
@given(
    norms=st.lists(st.lists(st.floats(0, 10), min_size=1, max_size=7), min_size=1, max_size=5).filter(
        lambda rows: len({len(r) for r in rows}) == 1
    ),
    tau=st.floats(0, 5),
)
def test_zeroed_group_count_property_against_a_direct_loop(norms, tau):
    expected = [max([n for n, value in enumerate(row, start=1) if value <= tau], default=0) for row in norms]
    m = groups.zeroed_group_count(np.array(norms), tau)
    np.testing.assert_array_equal(m, expected)
    n_groups = len(norms[0])
    assert np.all((0 <= m) & (m <= n_groups))
    assert np.all(groups.learned_sizes(m, n_groups, "half_ring") == n_groups - m)


# -- safe_sqrt ---------------------------------------------------------------------------------------
def test_safe_sqrt_forward_equals_sqrt():
    x = np.array([0.0, 1e-30, 1e-8, 0.25, 4.0, 1e6], dtype="float32")
    np.testing.assert_allclose(to_numpy(groups.safe_sqrt(x)), np.sqrt(x), rtol=1e-6)


def test_safe_sqrt_gradient_is_zero_at_exactly_zero_and_half_over_sqrt_elsewhere():
    x = np.array([0.0, 0.25, 4.0], dtype="float32")
    g = grad(groups.safe_sqrt, x)
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(g, [0.0, 1.0, 0.25], rtol=1e-6)


def test_norm_of_a_zero_group_has_a_finite_gradient_through_the_squared_norm():
    kernel = np.zeros((3, 3, 2, 2), dtype="float32")
    kernel[..., 1] = 1.0
    g = grad(lambda k: groups.safe_sqrt(groups.nested_group_sq_norms(k, "half_ring")), kernel)
    assert np.all(np.isfinite(g))
    np.testing.assert_array_equal(g[..., 0], 0.0)
    assert np.all(g[..., 1] > 0)

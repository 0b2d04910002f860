"""Thresholding (eq. 15/23) and reading the learned architecture (eq. 10, 11, 20)."""

import keras
import numpy as np
import pytest

import sparse_keras as sk
from sparse_keras import analysis, prune


def _kernel(layer):
    return np.array(keras.ops.convert_to_numpy(layer.kernel))


def _set(layer, value):
    layer.kernel.assign(value.astype("float32"))


def small_cnn():
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 5, padding="same", name="c1")(inputs)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    y = keras.layers.Conv2D(8, 3, padding="same", name="c2")(x)
    x = keras.layers.Add(name="add")([x, y])
    x = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = keras.layers.Conv2D(6, 3, strides=2, padding="same", name="c3")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(4, name="cls")(x)
    return keras.Model(inputs, outputs)


# ---------------------------------------------------------------------------------------------------
# kernel_sizes / layer_width


def test_kernel_sizes_half_ring_follows_the_nested_order():
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(5, 5, 2, 4)).astype("float32")
    kernel[0, :, :, 1] = kernel[:, 0, :, 1] = 0  # G_1 (top-left pair) gone -> size 4
    kernel[0, :, :, 2] = kernel[:, 0, :, 2] = kernel[4, :, :, 2] = kernel[:, 4, :, 2] = 0  # G_2 gone -> 3
    kernel[:, :, :, 3] = 0  # everything gone -> 0
    np.testing.assert_array_equal(analysis.kernel_sizes(kernel, 1e-6, "half_ring"), [5, 4, 3, 0])


def test_kernel_sizes_bottom_right_alone_does_not_shrink_a_half_ring_kernel():
    # G_2 contains G_1: zeroing only the bottom-right pair leaves G_1 (and so every group) alive.
    kernel = np.ones((3, 3, 1, 1), "float32")
    kernel[2, :] = kernel[:, 2] = 0
    assert analysis.kernel_sizes(kernel, 1e-6, "half_ring")[0] == 3


def test_kernel_sizes_ring_are_odd_or_zero():
    kernel = np.ones((5, 5, 1, 3), "float32")
    kernel[[0, 4], :, :, 1] = 0
    kernel[:, [0, 4], :, 1] = 0  # outer ring gone -> 3
    kernel[..., 2] = 0
    np.testing.assert_array_equal(analysis.kernel_sizes(kernel, 1e-6, "ring"), [5, 3, 0])


def test_kernel_sizes_rejects_non_square_and_unknown_scheme():
    with pytest.raises(ValueError, match=r"\(1, 3, 2, 2\)"):
        analysis.kernel_sizes(np.ones((1, 3, 2, 2)), 1e-3, "half_ring")
    with pytest.raises(ValueError, match="'diamond'"):
        analysis.kernel_sizes(np.ones((3, 3, 2, 2)), 1e-3, "diamond")


def test_layer_width_counts_kernels_above_tau():
    kernel = np.ones((3, 3, 2, 5), "float32")
    kernel[..., 1] = 1e-5  # norm 1.8e-4 <= tau
    kernel[..., 3] = 0
    assert analysis.layer_width(kernel, 1e-3) == 3


# ---------------------------------------------------------------------------------------------------
# prune.threshold


def test_threshold_kernel_scheme_zeroes_small_kernels_exactly():
    model = small_cnn()
    c2 = model.get_layer("c2")
    kernel = _kernel(c2)
    kernel[..., :3] *= 1e-6
    _set(c2, kernel)
    masks = prune.threshold(model, 1e-3, scheme="kernel")
    after = _kernel(c2)
    assert np.all(after[..., :3] == 0)
    np.testing.assert_array_equal(after[..., 3:], kernel[..., 3:])
    np.testing.assert_array_equal(masks["c2/kernel"], (np.arange(8) >= 3) * np.ones_like(kernel))
    assert "cls/kernel" not in masks  # the classifier is never pruned unless named


def test_threshold_half_ring_zeroes_the_largest_group_below_tau():
    model = small_cnn()
    c1 = model.get_layer("c1")
    kernel = _kernel(c1)
    kernel[0, :, :, 0] = kernel[:, 0, :, 0] = 1e-7  # G_1 of kernel 0 below tau
    _set(c1, kernel)
    prune.threshold(model, 1e-3, scheme="half_ring", where=["c1"])
    after = _kernel(c1)
    assert np.all(after[0, :, :, 0] == 0) and np.all(after[:, 0, :, 0] == 0)
    np.testing.assert_array_equal(after[1:, 1:, :, 0], kernel[1:, 1:, :, 0])
    np.testing.assert_array_equal(after[..., 1:], kernel[..., 1:])
    assert analysis.kernel_sizes(after, 1e-3, "half_ring")[0] == 4


def test_threshold_uses_the_attached_regularizers_scheme_by_default():
    model = small_cnn()
    sk.regularize(model, sk.NestedRing(1e-3), where=["c1"])
    c1, c2 = model.get_layer("c1"), model.get_layer("c2")
    k1, k2 = _kernel(c1), _kernel(c2)
    k1[[0, 4], :, :, 2] = 0
    k1[:, [0, 4], :, 2] = 1e-8
    k2[..., 0] = 1e-8  # no regularizer on c2: left alone
    _set(c1, k1)
    _set(c2, k2)
    prune.threshold(model, 1e-3)
    assert np.all(_kernel(c1)[[0, 4], :, :, 2] == 0) and np.all(_kernel(c1)[:, [0, 4], :, 2] == 0)
    np.testing.assert_array_equal(_kernel(c2), k2)


def test_threshold_on_depthwise_kernels_uses_the_depthwise_layout():
    model = small_cnn()
    dw = model.get_layer("dw")
    kernel = _kernel(dw)  # (3, 3, 8, 1)
    kernel[..., 5, 0] = 1e-8
    _set(dw, kernel)
    prune.threshold(model, 1e-3, scheme="kernel", where=["dw"])
    after = _kernel(dw)
    assert np.all(after[..., 5, 0] == 0)
    assert np.count_nonzero(np.abs(after).sum(axis=(0, 1)) == 0) == 1


def test_threshold_rejects_bad_tau_and_scheme():
    model = small_cnn()
    with pytest.raises(ValueError, match="tau"):
        prune.threshold(model, -1.0)
    with pytest.raises(ValueError, match="'cube'"):
        prune.threshold(model, 1e-3, scheme="cube")


# ---------------------------------------------------------------------------------------------------
# report: widths, inputs followed through the graph, multiply-adds (eq. 10) and parameters


def test_report_counts_follow_equation_10_through_the_graph():
    model = small_cnn()
    c1, c2 = model.get_layer("c1"), model.get_layer("c2")
    k1 = _kernel(c1)
    k1[..., :3] = 0  # c1 keeps 5 of 8
    k1[0, :, :, 3] = k1[:, 0, :, 3] = 0  # kernel 3 learned size 4
    _set(c1, k1)
    k2 = _kernel(c2)
    k2[..., :4] = 0  # c2 keeps 4 of 8 (channels 4..7): the Add keeps the union 3..7
    _set(c2, k2)

    rep = analysis.report(model, 1e-6, scheme="half_ring")
    rows = {r.layer: r for r in rep.layers}
    assert (rows["c1"].width, rows["c1"].inputs) == (5, 3)
    assert rows["c1"].sizes == {4: 1, 5: 4}
    # eq. 10: r*c * d_{i-1} * sum_j s_ij^2 over the alive kernels; 'same' padding keeps 16x16.
    assert rows["c1"].macs == 16 * 16 * 3 * (4 * 25 + 16)
    assert rows["c1"].base_macs == 16 * 16 * 3 * 8 * 25
    assert (rows["c2"].width, rows["c2"].inputs) == (4, 5)
    assert rows["c2"].macs == 16 * 16 * 5 * 4 * 9
    assert rows["c2"].params == 5 * 4 * 9 + 4  # alive kernels over alive inputs, plus their biases
    assert (rows["dw"].width, rows["dw"].inputs) == (5, 1)  # depthwise channels die with their input
    assert rows["dw"].macs == 16 * 16 * 5 * 9
    assert (rows["c3"].inputs, rows["c3"].width) == (5, 6)
    assert rows["c3"].macs == 8 * 8 * 5 * 6 * 9
    assert rows["cls"].inputs == 6
    assert rep.base_macs == sum(r.base_macs for r in rep.layers)
    assert rep.total_params == model.count_params()
    # The kernels' removed weights, plus gamma/beta/mean/variance of the 3 channels no kernel feeds any more.
    bn_removed = 3 * 4
    assert rep.learned_total_params == model.count_params() - sum(r.base_params - r.params for r in rep.layers) - bn_removed


def test_report_of_an_untouched_model_changes_nothing():
    rep = analysis.report(small_cnn(), 1e-3)
    for row in rep.layers:
        assert (row.width, row.inputs, row.macs, row.params) == (
            row.base_width,
            row.base_inputs,
            row.base_macs,
            row.base_params,
        )


def test_report_writes_markdown_csv_and_json(tmp_path):
    model = small_cnn()
    rep = analysis.report(model, 1e-3, path=str(tmp_path / "arch"))
    markdown = (tmp_path / "arch.md").read_text()
    assert "| c1 | Conv2D | 5x5x3x8 | 8/8 |" in markdown
    csv_lines = (tmp_path / "arch.csv").read_text().strip().splitlines()
    assert csv_lines[0].startswith("layer,kind,kernel_shape")
    assert len(csv_lines) == 1 + len(rep.layers)
    assert '"base_macs"' in (tmp_path / "arch.json").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["arch.csv", "arch.json", "arch.md"]


def test_report_to_a_missing_directory_fails_and_writes_nothing(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        analysis.report(small_cnn(), 1e-3, path=str(tmp_path / "missing" / "arch"))
    assert list(tmp_path.iterdir()) == []


def test_report_on_a_subclassed_model_falls_back_to_all_inputs_alive():
    class Tiny(keras.Model):
        def __init__(self):
            super().__init__()
            self.conv = keras.layers.Conv2D(4, 3)
            self.head = keras.layers.Dense(2)

        def call(self, x):
            return self.head(keras.ops.mean(self.conv(x), axis=(1, 2)))

    model = Tiny()
    model(np.zeros((1, 8, 8, 2), "float32"))
    rep = analysis.report(model, 1e-3)
    assert [r.width for r in rep.layers] == [4, 2]


def test_plot_architecture_writes_a_png(tmp_path):
    model = small_cnn()
    rep = analysis.report(model, 1e-3, scheme="half_ring")
    path = analysis.plot_architecture({"alpha=0": rep, "alpha=1e-4": rep}, str(tmp_path / "arch.png"))
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_threshold_then_report_after_group_lasso_training():
    """End to end on real data: a strong kernel-number lasso, fit, threshold, read the widths."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images[..., None] / 16.0).astype("float32")
    y = digits.target
    inputs = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv")(inputs)
    h = keras.layers.GlobalAveragePooling2D()(h)
    model = keras.Model(inputs, keras.layers.Dense(10, name="cls")(h))
    sk.regularize(model, sk.KernelGroupLasso(3e-2))
    model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=30, batch_size=128, verbose=0)
    norms = np.sqrt((_kernel(model.get_layer("conv")) ** 2).sum(axis=(0, 1, 2)))
    tau = 1e-2
    prune.threshold(model, tau)
    width = analysis.report(model, tau).layers[0].width
    assert width == int((norms > tau).sum())
    assert width < 16  # the lasso removed kernels; with strength 0 all 16 survive (see below)


def test_without_the_lasso_no_kernel_falls_below_tau():
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images[..., None] / 16.0).astype("float32")
    inputs = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv")(inputs)
    h = keras.layers.GlobalAveragePooling2D()(h)
    model = keras.Model(inputs, keras.layers.Dense(10, name="cls")(h))
    model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    model.fit(x, digits.target, epochs=30, batch_size=128, verbose=0)
    assert analysis.report(model, 1e-2).layers[0].width == 16

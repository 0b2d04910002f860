"""LRSD energy pruning (eq. 6-7), masked fine-tuning and the N_c / N_o accounting (Guo et al. 2019)."""

import json

import hypothesis
import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import keras
import numpy as np
import pytest

import sparse_keras
from sparse_keras import convert
from sparse_keras import lrsd
from sparse_keras.sparsity import energy, masking
from sparse_keras.testing import to_numpy

# Backend-independent Python (graph rewriting, counting, report writing): checked on TensorFlow only, because
# on JAX every new weight shape compiles its initializer and CI time is shared by both backend runs.
backend_independent = pytest.mark.skipif(
    keras.backend.backend() == "jax", reason="backend-independent; run on TensorFlow"
)


def _sorted_reference(s, alpha):
    """Eq. 7 as the paper words it: add entries from large to small |s| until the sum reaches alpha E."""
    flat = np.abs(np.asarray(s, np.float64)).ravel()
    target, total, keep = alpha * flat.sum() * (1 - energy.RELATIVE_TOLERANCE), 0.0, np.zeros(flat.size, bool)
    for i in sorted(range(flat.size), key=lambda i: (-flat[i], i)):
        if total >= target:
            break
        keep[i], total = True, total + flat[i]
    return keep.reshape(np.shape(s))


# -- energy_ratio_mask -------------------------------------------------------------------------------
@hypothesis.settings(max_examples=60, deadline=None)
@hypothesis.given(
    s=hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=4, max_side=5), elements=st.floats(-4, 4, width=32)),
    alpha=st.floats(0, 1),
)
def test_energy_mask_matches_a_direct_sort(s, alpha):
    mask = energy.energy_ratio_mask(s, alpha)
    np.testing.assert_array_equal(mask.astype(bool), _sorted_reference(s, alpha))


@hypothesis.settings(max_examples=60, deadline=None)
@hypothesis.given(s=hnp.arrays(np.float64, st.integers(1, 40), elements=st.floats(-3, 3)), alpha=st.floats(0.01, 1))
def test_energy_mask_is_the_fewest_entries_reaching_alpha(s, alpha):
    mask = energy.energy_ratio_mask(s, alpha).astype(bool)
    kept = np.abs(s)[mask]
    total = np.abs(s).sum()
    # The mask accepts sums within RELATIVE_TOLERANCE of alpha * E; sums in another order differ by round-off.
    assert kept.sum() >= alpha * total * (1 - 2 * energy.RELATIVE_TOLERANCE)
    if kept.size:  # dropping the smallest kept entry falls short: no smaller set reaches alpha
        assert kept.sum() - kept.min() < alpha * total * (1 - energy.RELATIVE_TOLERANCE / 2)
        assert kept.min() >= np.abs(s)[~mask].max(initial=0)  # the largest entries are the ones kept


def test_energy_mask_edge_ratios():
    s = np.array([[0.0, 3.0], [-1.0, 0.0]])
    np.testing.assert_array_equal(energy.energy_ratio_mask(s, 1.0), [[0, 1], [1, 0]])
    np.testing.assert_array_equal(energy.energy_ratio_mask(s, 0.75), [[0, 1], [0, 0]])
    assert energy.energy_ratio_mask(s, 0.0).sum() == 0
    assert energy.energy_ratio_mask(np.zeros(4), 0.9).sum() == 0


@pytest.mark.parametrize("alpha", [-0.1, 1.5, "high", None, True, float("nan")])
def test_bad_alpha_is_named(alpha):
    with pytest.raises(ValueError, match="alpha="):
        energy.energy_ratio_mask(np.ones(3), alpha)


def test_non_finite_s_is_refused():
    with pytest.raises(ValueError, match="finite"):
        energy.energy_ratio_mask(np.array([1.0, np.nan]), 0.9)


# -- prune_lrsd and masked fine-tuning ----------------------------------------------------------------
def _lrsd_model():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(6, 3, use_bias=False, name="conv1")(inputs)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(8, 3, strides=2, use_bias=False, name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    plain = keras.Model(inputs, keras.layers.Dense(3, name="classifier")(x), name="tiny")
    return convert.to_lrsd(plain, rank=1, sparse_l1=1e-3), plain


def _data(n=32):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 8, 8, 3)).astype("float32"), rng.integers(0, 3, size=n)


def test_prune_lrsd_zeroes_each_s_by_its_own_energy_mask():
    model, _ = _lrsd_model()
    before = {layer.name: to_numpy(layer.s_kernel) for layer in lrsd.lrsd_layers_of(model)}
    masks = sparse_keras.prune.prune_lrsd(model, alpha=0.6)
    assert len(masks) == 3
    for layer in lrsd.lrsd_layers_of(model):
        expected = energy.energy_ratio_mask(before[layer.name], 0.6)
        np.testing.assert_array_equal(masks[layer.s_kernel.path], expected)
        np.testing.assert_array_equal(to_numpy(layer.s_kernel), before[layer.name] * expected)
        assert layer.s_kernel.regularizer is None  # the l1 term is off for fine-tuning by default
        assert type(layer).from_config(layer.get_config()).sparse_regularizer is None  # and stays off when saved
    assert masking.current_masks(model).keys() == masks.keys()


def test_masked_fine_tuning_keeps_zeros_and_trains_the_rest():
    model, _ = _lrsd_model()
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = _data()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)  # a traced step exists before pruning
    masks = lrsd.prune_lrsd(model, alpha=0.5)
    layer = model.get_layer("conv2")
    s_before, v_before = to_numpy(layer.s_kernel), to_numpy(layer.v_kernel)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    s_after = to_numpy(layer.s_kernel)
    assert np.all(s_after[masks[layer.s_kernel.path] == 0] == 0)
    kept = masks[layer.s_kernel.path] == 1
    assert not np.allclose(s_after[kept], s_before[kept])  # surviving S entries train
    assert not np.allclose(to_numpy(layer.v_kernel), v_before)  # U and V stay dense and train


def test_prune_lrsd_needs_lrsd_layers():
    inputs = keras.Input((4,))
    with pytest.raises(ValueError, match="no LRSD layers"):
        lrsd.prune_lrsd(keras.Model(inputs, keras.layers.Dense(2)(inputs)))


# -- N_c / N_o -----------------------------------------------------------------------------------------
def _trainable(model):
    return sum(int(np.prod(v.shape)) for v in model.trainable_weights)


@backend_independent
def test_n_c_counts_u_v_bn_and_only_nonzero_s_and_n_o_the_plain_network():
    model, plain = _lrsd_model()
    counts = lrsd.compression(model)
    assert counts.original == _trainable(plain) == lrsd.compression(model, original=plain).original
    assert counts.compressed == _trainable(model)  # nothing pruned yet: N_c > N_o
    masks = lrsd.prune_lrsd(model, alpha=0.5)
    zeros = sum(int((m == 0).sum()) for m in masks.values())
    counts = lrsd.compression(model)
    assert counts.compressed == _trainable(model) - zeros
    conv1 = next(r for r in counts.layers if r.layer == "conv1")
    # conv1: W is 3x3x3x6; L = |V| (3x3x3x1) + |U| (1x6); Fig. 5 leaves BN out.
    assert (conv1.original, conv1.low_rank) == (162, 33)
    assert conv1.sparse == int(masks[model.get_layer("conv1").s_kernel.path].sum())
    fc = next(r for r in counts.layers if r.layer == "classifier")
    assert fc.low_rank == 0 and fc.low_rank_ratio == 0  # FC layers are sparse-only


@backend_independent
def test_prune_and_finetune_fills_a_table_row_and_writes_reports(tmp_path):
    model, _ = _lrsd_model()
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer="sgd", loss=loss, metrics=["accuracy"])
    x, y = _data(16)

    def evaluate(m):
        return m.evaluate(x, y, verbose=0)[1]

    result, counts = lrsd.prune_and_finetune(
        model, evaluate, finetune=lambda m: m.fit(x, y, epochs=1, verbose=0), alpha=0.9, dataset="random",
        baseline_accuracy=93.77,
    )
    assert result.compressed_params == counts.compressed and result.ratio == counts.ratio
    assert all(0 <= a <= 100 for a in (result.dense_accuracy, result.pruned_accuracy, result.finetuned_accuracy))
    table = lrsd.results_table([result])
    assert "| N_c/N_o (%) |" in table and f"{100 * result.ratio:.2f}" in table and "93.77" in table
    paths = counts.save(str(tmp_path / "tiny"))
    assert json.loads(open(paths["json"]).read())["compressed"] == counts.compressed
    assert "#S/#W" in open(paths["md"]).read()
    png = lrsd.plot_layer_ratios(counts, str(tmp_path / "fig5.png"))
    assert open(png, "rb").read(4) == b"\x89PNG"

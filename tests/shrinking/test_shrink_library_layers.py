"""shrink() on the library's own layers: LRSD, CSC and LST blocks keep their outputs and lose what is dead."""

import os

import keras
import numpy as np
import pytest
from export_checks import assert_export_serves_and_converts_to_tflite

from sparse_keras import analysis
from sparse_keras.layers import CSCConv2D, InvertedLSTBlock, LRSDConv2D, LRSDDense, LSTBlockI, LSTBlockII
from sparse_keras.shrinking import shrink


def assert_same_outputs(original, shrunk, x):
    # One compiled step per model: on JAX an eager call would compile every op on its own.
    expected, got = original.predict_on_batch(x), shrunk.predict_on_batch(x)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


def assert_round_trip(shrunk, x, tmp_path):
    path = os.fspath(tmp_path / "shrunk.keras")
    shrunk.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded.predict_on_batch(x), shrunk.predict_on_batch(x), rtol=1e-6, atol=1e-6)
    return loaded


def images(shape, batch=2, seed=1):
    return np.random.default_rng(seed).normal(size=(batch, *shape)).astype("float32")


def randomize_batch_norms(layers, seed=0):
    """Non-trivial statistics, so that a BN maps a zero channel to a non-zero constant."""
    rng = np.random.default_rng(seed)
    for bn in filter(None, layers):
        width = bn.gamma.shape
        bn.set_weights([rng.uniform(0.5, 1.5, width), rng.normal(0, 0.2, width), rng.normal(0, 0.2, width), rng.uniform(0.5, 1.5, width)])


def assign(variable, fn):
    value = np.array(keras.ops.convert_to_numpy(variable))
    fn(value)
    variable.assign(value)


def zero(index):
    return lambda value: value.__setitem__(index, 0)


def macs(model):
    return analysis.report(model, tau=0.0).base_macs


# ---------------------------------------------------------------------------------------------------
# LRSD


def lrsd_model(rank=3, batch_norm=True):
    """An LRSD conv (U V + S, BN after U) between plain layers, a residual Add, and an LRSD dense head."""
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(6, 3, padding="same", name="stem")(inputs)
    y = LRSDConv2D(6, 3, rank=rank, batch_norm=batch_norm, name="lrsd")(x)
    y = keras.layers.BatchNormalization(name="bn")(y)
    x = keras.layers.Add(name="add")([keras.layers.ReLU(name="relu")(y), x])
    x = LRSDConv2D(8, 3, rank=rank, batch_norm=batch_norm, activation="relu", name="lrsd2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = LRSDDense(5, rank=2, name="fc")(x)
    outputs = keras.layers.Dense(3, name="head")(x)
    model = keras.Model(inputs, outputs)
    randomize_batch_norms([model.get_layer("bn"), model.get_layer("lrsd").low_rank_bn, model.get_layer("lrsd2").low_rank_bn])
    return model


def test_lrsd_outputs_and_inputs_that_are_dead_leave_and_the_rest_merge_into_one_conv(tmp_path):
    model = lrsd_model()
    stem, lrsd = model.get_layer("stem"), model.get_layer("lrsd")
    assign(stem.kernel, zero((..., [2, 5])))  # stem channels 2, 5: the constant 0, lrsd's inputs and the Add's
    stem.bias.assign(np.array([1, 1, 0, 1, 1, 0], "float32"))
    # lrsd outputs 2, 5: U and S columns zero. The BN after U leaves a constant (the folded bias), which the
    # next BN + ReLU maps to 0, so the Add sums two zero constants there and every channel 2 and 5 can go.
    assign(lrsd.u_kernel, zero((..., [2, 5])))
    assign(lrsd.s_kernel, zero((..., [2, 5])))
    assign(model.get_layer("bn").beta, lambda beta: beta.__setitem__([2, 5], -10.0))
    shrunk = shrink(model)
    x = images((8, 8, 3))
    assert_same_outputs(model, shrunk, x)
    merged = shrunk.get_layer("lrsd")
    assert type(merged) is keras.layers.Conv2D and shrunk.shrink_choices["lrsd"][0] == "merged"
    assert merged.kernel.shape == (3, 3, 4, 4) and shrunk.get_layer("lrsd2").kernel.shape == (3, 3, 4, 8)
    assert shrunk.count_params() < model.count_params()
    loaded = assert_round_trip(shrunk, x, tmp_path)
    assert not any(type(layer).__module__.startswith("sparse_keras") for layer in loaded.layers)


def test_lrsd_dead_outputs_take_the_next_layers_inputs_with_them():
    model = lrsd_model()
    lrsd2, fc = model.get_layer("lrsd2"), model.get_layer("fc")
    assign(lrsd2.u_kernel, zero((..., [0, 3, 7])))
    assign(lrsd2.s_kernel, zero((..., [0, 3, 7])))
    assign(fc.u_kernel, zero((..., [1])))
    assign(fc.s_kernel, zero((..., [1])))
    shrunk = shrink(model)
    assert shrunk.get_layer("lrsd2").kernel.shape == (3, 3, 6, 5)
    assert shrunk.get_layer("fc").kernel.shape == (5, 4)  # lrsd2's dead outputs gone from fc's inputs
    assert shrunk.get_layer("head").kernel.shape == (4, 3)  # fc output 1 (zero U and S columns): its bias
    assert_same_outputs(model, shrunk, images((8, 8, 3)))


@pytest.mark.parametrize("batch_norm", [True, False])
def test_lrsd_whose_sparse_part_is_pruned_away_stays_factorised_with_live_rank_components(batch_norm, tmp_path):
    model = lrsd_model(rank=3, batch_norm=batch_norm)
    lrsd2 = model.get_layer("lrsd2")
    lrsd2.s_kernel.assign(np.zeros(lrsd2.s_kernel.shape, "float32"))
    assign(lrsd2.v_kernel, zero((..., 1)))  # rank component 1 is gone: rank 3 -> 2
    shrunk = shrink(model)
    assert shrunk.shrink_choices["lrsd2"][0] == "low_rank"
    assert shrunk.get_layer("lrsd2_v").kernel.shape == (3, 3, 6, 2)
    assert shrunk.get_layer("lrsd2").kernel.shape == (1, 1, 2, 8)
    # 3*3*6*2 + 2*8 = 124 multiply-adds per pixel instead of the merged 3*3*6*8 = 432.
    assert macs(shrunk) < macs(model) - 8 * 8 * (432 - 124) + 1
    x = images((8, 8, 3))
    assert_same_outputs(model, shrunk, x)
    assert_round_trip(shrunk, x, tmp_path)


def test_lrsd_dense_with_zero_sparse_part_factorises_and_sparse_only_layers_merge():
    inputs = keras.Input((12,))
    x = LRSDDense(10, rank=2, name="low")(inputs)
    outputs = LRSDDense(4, sparse_only=True, name="sparse")(x)
    model = keras.Model(inputs, outputs)
    low = model.get_layer("low")
    low.s_kernel.assign(np.zeros((12, 10), "float32"))
    shrunk = shrink(model)
    assert shrunk.shrink_choices["low"][0] == "low_rank" and shrunk.get_layer("low_v").kernel.shape == (12, 2)
    assert type(shrunk.get_layer("sparse")) is keras.layers.Dense
    assert_same_outputs(model, shrunk, images((12,)))


def test_tau_thresholds_lrsd_sparse_part_only():
    model = lrsd_model(rank=1)
    lrsd2 = model.get_layer("lrsd2")
    assign(lrsd2.u_kernel, zero((..., [0, 1])))
    assign(lrsd2.s_kernel, lambda s: s.__setitem__((..., [0, 1]), 1e-4 * np.sign(s[..., [0, 1]])))
    assert shrink(model).get_layer("lrsd2").kernel.shape[-1] == 8  # tiny but non-zero S: kept
    assert shrink(model, tau=0.01).get_layer("lrsd2").kernel.shape[-1] == 6


# ---------------------------------------------------------------------------------------------------
# CSC


def csc_model(n_iter=2, strides=1, non_negative=True):
    """A CSC layer between a plain conv and a BN / Add / Dense head (an SDNet stem in small)."""
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(5, 1, name="expand")(inputs)
    codes = CSCConv2D(6, 3, n_iter=n_iter, strides=strides, non_negative=non_negative, power_iterations=5, name="csc")(x)
    y = keras.layers.BatchNormalization(name="bn")(codes)
    y = keras.layers.Add(name="add")([y, keras.layers.Conv2D(6, 1, strides=strides, name="skip")(x)])
    y = keras.layers.GlobalAveragePooling2D(name="gap")(y)
    outputs = keras.layers.Dense(4, name="head")(y)
    model = keras.Model(inputs, outputs)
    randomize_batch_norms([model.get_layer("bn")])
    return model


def kill_atoms(model, atoms):
    """Zero atoms of the CSC layer, and the skip conv's matching outputs so that the Add lets them go."""
    csc, skip = model.get_layer("csc"), model.get_layer("skip")
    assign(csc.kernel, zero((..., atoms)))
    assign(skip.kernel, zero((..., atoms)))
    assign(skip.bias, zero(atoms))


@pytest.mark.parametrize(("strides", "non_negative"), [(1, True), (2, True), (1, False)])
def test_zero_atoms_leave_the_csc_layer_with_its_step_size_frozen(strides, non_negative, tmp_path):
    model = csc_model(strides=strides, non_negative=non_negative)
    kill_atoms(model, [0, 4])
    csc = model.get_layer("csc")
    shrunk = shrink(model)
    small = shrunk.get_layer("csc")
    assert small.kernel.shape == (3, 3, 5, 4) and shrunk.get_layer("head").kernel.shape == (4, 4)
    assert float(keras.ops.convert_to_numpy(small.step_size)) == float(keras.ops.convert_to_numpy(csc.step_size))
    assert not small.refresh_step_size
    x = images((8, 8, 3))
    assert_same_outputs(model, shrunk, x)
    loaded = assert_round_trip(shrunk, x, tmp_path)
    assert float(keras.ops.convert_to_numpy(loaded.get_layer("csc").step_size)) == float(keras.ops.convert_to_numpy(csc.step_size))


def constant_input_channels(model, channels, value):
    expand = model.get_layer("expand")
    assign(expand.kernel, zero((..., channels)))
    assign(expand.bias, lambda b: b.__setitem__(channels, value))


def test_constant_input_channels_no_atom_reads_go():
    model = csc_model()
    constant_input_channels(model, [1, 3], 0.7)
    assign(model.get_layer("csc").kernel, zero((slice(None), slice(None), [1, 3])))
    assign(model.get_layer("skip").kernel, zero((slice(None), slice(None), [1, 3])))
    shrunk = shrink(model)
    assert shrunk.get_layer("csc").kernel.shape == (3, 3, 3, 6)
    assert shrunk.get_layer("expand").kernel.shape == (1, 1, 3, 3)
    assert_same_outputs(model, shrunk, images((8, 8, 3)))


@pytest.mark.parametrize(("n_iter", "kept"), [(2, 5), (1, 3)])
def test_a_zero_input_channel_an_atom_reads_stays_while_the_residual_feeds_back(n_iter, kept):
    # x_c = 0 contributes nothing to A*(x), but the residual 0 - A(z)_c does from the second iteration on.
    model = csc_model(n_iter=n_iter)
    constant_input_channels(model, [1, 3], 0.0)
    assign(model.get_layer("skip").kernel, zero((slice(None), slice(None), [1, 3])))
    shrunk = shrink(model)
    assert shrunk.get_layer("csc").kernel.shape[2] == kept
    assert_same_outputs(model, shrunk, images((8, 8, 3)))


# ---------------------------------------------------------------------------------------------------
# LST blocks


def lst_model(block, input_shape=(8, 8, 4), stem_width=8):
    """stem conv -> LST block -> GAP -> Dense, every BN with non-trivial statistics."""
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(stem_width, 1, name="stem")(inputs)
    x = block(x)
    outputs = keras.layers.Dense(3, name="head")(keras.layers.GlobalAveragePooling2D(name="gap")(x))
    model = keras.Model(inputs, outputs)
    randomize_batch_norms([layer for layer in block._layers if isinstance(layer, keras.layers.BatchNormalization)])
    return model


def test_lst2_loses_the_resize_outputs_that_read_nothing(tmp_path):
    model = lst_model(LSTBlockII(16, name="block"))  # identity shortcut, C_s = 4
    block = model.get_layer("block")
    assign(block.resize_conv.kernel, zero((..., [0, 2])))
    shrunk = shrink(model)
    small = shrunk.get_layer("block")
    assert small.resize_conv.kernel.shape == (1, 1, 8, 2) and small.channel_conv.kernel.shape == (1, 1, 2, 4)
    assert small.multiply_adds((8, 8, 8)) < block.multiply_adds((8, 8, 8))
    x = images((8, 8, 4))
    assert_same_outputs(model, shrunk, x)
    assert assert_round_trip(shrunk, x, tmp_path).get_layer("block").resize_width == 2


@pytest.mark.parametrize("block_class", [LSTBlockI, InvertedLSTBlock])
def test_lst1_loses_channel_transform_outputs_that_soft_threshold_to_zero(block_class, tmp_path):
    kwargs = {"expansion": 2} if block_class is InvertedLSTBlock else {}
    model = lst_model(block_class(12, strides=2, name="block", **kwargs))
    block = model.get_layer("block")
    core = block.channel_conv.kernel.shape[-1]
    assign(block.channel_conv.kernel, zero((..., [0, 1, 2])))
    assign(block.channel_bn.beta, zero([0, 1]))  # BN(0) = 0 on channels 0, 1 -> ST = 0: removable
    assign(block.channel_bn.moving_mean, zero([0, 1]))
    assign(block.channel_bn.beta, lambda b: b.__setitem__(2, 0.5))  # channel 2: a non-zero constant stays
    shrunk = shrink(model)
    small = shrunk.get_layer("block")
    assert small.channel_conv.kernel.shape[-1] == core - 2 and small.core_width == core - 2
    assert small.resize_conv.kernel.shape[2] == 4 * (core - 2)  # a*a = 4 T_s maps per core channel
    x = images((8, 8, 4))
    assert_same_outputs(model, shrunk, x)
    assert_round_trip(shrunk, x, tmp_path)


@pytest.mark.parametrize(("strides", "dropped"), [(2, True), (1, False)])
def test_constant_inputs_fold_into_an_lst_block_only_through_a_strided_dense_shortcut(strides, dropped):
    # At stride 1 with 6 inputs a 6-wide LST-I has an identity shortcut: the residual sum needs every channel.
    model = lst_model(LSTBlockI(6, strides=strides, name="block"), stem_width=6)
    stem = model.get_layer("stem")
    assign(stem.kernel, zero((..., [1, 4])))
    assign(stem.bias, lambda b: b.__setitem__([1, 4], [0.3, -0.2]))
    shrunk = shrink(model)
    assert shrunk.get_layer("stem").kernel.shape[-1] == (4 if dropped else 6)
    assert shrunk.get_layer("block").channel_conv.kernel.shape[2] == (4 if dropped else 6)
    assert_same_outputs(model, shrunk, images((8, 8, 4)))


@pytest.mark.parametrize(("make", "argument"), [(lambda: LSTBlockII(16, resize_width=0), "resize_width"),
                                                 (lambda: LSTBlockI(8, core_width=2.5), "core_width")])
def test_explicit_internal_widths_must_be_positive_ints(make, argument):
    with pytest.raises(ValueError, match=argument):
        make()


def test_lst_block_with_nothing_dead_is_rebuilt_unchanged():
    model = lst_model(InvertedLSTBlock(8, expansion=1, name="block"))  # E = 1: T_s reads the input
    shrunk = shrink(model)
    assert shrunk.count_params() == model.count_params()
    assert_same_outputs(model, shrunk, images((8, 8, 4)))


# ---------------------------------------------------------------------------------------------------
# the speed benchmark's rows per method


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="test-time budget: compilation of 8 models on JAX")
def test_speedup_benchmark_has_a_row_per_method(capsys):
    from benchmarks import shrink_speedup

    rows = shrink_speedup.main(["--quick", "--models", "", "--methods", ",".join(shrink_speedup.METHODS), "--input_size", "8"])
    assert [r["model"] for r in rows] == ["plain_cnn (LRSD)", "plain_cnn (LRSD)", "vgg7_slim (LRSD, rank 1)", "csc_cnn",
                                          "sdnet18_all", "lstnet_resnet20", "lstnet_resnet20 (LST-I)"]
    assert all(r["mac_reduction"] > 1.2 and r["params"][1] < r["params"][0] and np.isfinite(r["efficiency"]) for r in rows)
    assert all(r["output_difference"] < 1e-5 for r in rows)
    assert "lrsd: channels 50% + S zero (U V only)" in capsys.readouterr().out


def _zeroed_library_models():
    lrsd = lrsd_model()
    assign(lrsd.get_layer("lrsd").u_kernel, zero((..., [1, 4])))
    assign(lrsd.get_layer("lrsd").s_kernel, zero((..., [1, 4])))
    csc = csc_model()
    kill_atoms(csc, [0, 4])
    lst = lst_model(LSTBlockII(16, name="block"))
    return {"lrsd": (lrsd, (8, 8, 3)), "csc": (csc, (8, 8, 3)), "lst": (lst, (8, 8, 4))}


@pytest.mark.tf_only
@pytest.mark.parametrize("kind", ["lrsd", "csc", "lst"])
def test_shrunk_library_models_export_serve_and_convert_to_tflite(kind, tmp_path):
    model, shape = _zeroed_library_models()[kind]
    shrunk = shrink(model)
    x = images(shape)
    expected = model.predict_on_batch(x)
    assert_export_serves_and_converts_to_tflite(shrunk, x, expected, os.fspath(tmp_path / "saved"))

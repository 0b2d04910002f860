"""Pruning coupled groups to a target, approximate shrinking, and the report agreeing with shrink."""

import warnings

import keras
import numpy as np
import pytest

import sparse_keras as sk
from tests.shrinking.test_shrink import assert_same_outputs, randomize_batch_norms
from tests.sparsity.test_structure import build, depthwise, residual

L = keras.layers


@pytest.mark.parametrize("criterion", sk.prune.CRITERIA)
def test_to_target_macs_is_what_the_report_predicts_and_shrink_delivers(criterion):
    model = build(depthwise)
    before = sk.analysis.report(model, tau=0)
    selection = sk.prune.to_target(model, macs=0.6, criterion=criterion)
    assert selection.macs_before == before.base_macs
    assert selection.macs_after <= 0.6 * before.base_macs
    predicted = sk.analysis.report(model, tau=0)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="shrink keeps")  # nothing kept beyond the report
        shrunk = sk.shrink(model)
    assert_same_outputs(model, shrunk, (8, 8, 3))
    assert predicted.macs == selection.macs_after == sk.analysis.report(shrunk, tau=0).base_macs
    assert predicted.learned_total_params == shrunk.count_params()


def test_to_target_channels_globally_and_per_layer_keeps_a_channel_per_layer():
    model = build(residual)
    groups = sk.structure.coupled_groups(model)
    selection = sk.prune.to_target(model, channels=0.5, groups=groups)
    assert selection.channels_after == round(0.5 * len(groups.prunable))
    families = groups.by_producer()
    alive = {p: sum(not g.is_zero() for g in fam) for p, fam in families.items()}
    assert min(alive.values()) >= 1

    model = build(residual)
    groups = sk.structure.coupled_groups(model)
    name = next(p for p in groups.by_producer() if len(p) == 1)[0]
    selection = sk.prune.to_target(model, channels={name: 0.25}, groups=groups)
    assert {g.producers for g in selection.groups} == {(name,)}
    assert len(selection.groups) == 8 - 2


def test_magnitude_ranks_the_smallest_filters_first_within_a_layer():
    inputs = keras.Input((6, 6, 3))
    x = L.Conv2D(4, 3, padding="same", name="a")(inputs)
    model = keras.Model(inputs, L.Dense(2)(L.GlobalAveragePooling2D()(L.Conv2D(5, 1, name="b")(x))))
    kernel = np.ones((3, 3, 3, 4), "float32") * np.array([3.0, 0.1, 2.0, 1.0], "float32")
    model.get_layer("a").kernel.assign(kernel)
    selection = sk.prune.to_target(model, channels={"a": 0.5}, criterion="magnitude")
    removed = sorted(int(s.index[0]) for g in selection.groups for s in g.slices if s.layer.name == "a" and s.attr == "kernel" and s.role == "out")
    assert removed == [1, 3]


def test_relative_tau_uses_each_layers_largest_group():
    inputs = keras.Input((6, 6, 3))
    x = L.Conv2D(3, 3, padding="same", name="a")(inputs)
    x = L.Conv2D(3, 3, padding="same", name="b")(x)
    model = keras.Model(inputs, L.Dense(2)(L.GlobalAveragePooling2D()(x)))
    for name, scale in (("a", 1.0), ("b", 100.0)):
        model.get_layer(name).kernel.assign(np.ones((3, 3, 3, 3), "float32") * np.array([1.0, 0.04, 0.5]) * scale)
    sk.prune.threshold(model, relative=0.05, scheme="kernel")
    for name in ("a", "b"):
        norms = np.linalg.norm(keras.ops.convert_to_numpy(model.get_layer(name).kernel).reshape(-1, 3), axis=0)
        assert (norms == 0).tolist() == [False, True, False]
    with pytest.raises(ValueError, match="exactly one of tau= or relative="):
        sk.prune.threshold(model, 1e-3, relative=0.1)
    with pytest.raises(ValueError, match="relative must be a fraction"):
        sk.prune.threshold(model, relative=1.5)


def _zero_kernel_channel_with_bn_shift():
    """A zeroed conv channel whose BatchNormalization shift stays: a constant before a 'same' 3x3 conv."""
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(6, 3, padding="same", use_bias=False, name="a")(inputs)
    x = L.ReLU()(L.BatchNormalization(name="bn")(x))
    x = L.Conv2D(4, 3, padding="same", name="b")(x)
    model = keras.Model(inputs, L.Dense(2)(L.GlobalAveragePooling2D()(x)))
    randomize_batch_norms(model)
    kernel = np.array(keras.ops.convert_to_numpy(model.get_layer("a").kernel))
    kernel[..., :2] = 0
    model.get_layer("a").kernel.assign(kernel)
    return model


def test_exact_shrink_keeps_unabsorbable_constants_and_says_why_approximate_removes_them():
    model = _zero_kernel_channel_with_bn_shift()
    with pytest.warns(UserWarning, match="cannot absorb exactly.*a: 2"):
        exact = sk.shrink(model)
    assert_same_outputs(model, exact, (8, 8, 3))
    assert exact.get_layer("a").kernel.shape[-1] == 6
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="shrink keeps")
        approx = sk.shrink(model, exact=False)
    assert approx.get_layer("a").kernel.shape[-1] == 4
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")
    # Away from the border a constant channel is folded exactly: the interior of conv b agrees.
    probe = keras.Model(model.inputs, model.get_layer("b").output)
    probe_approx = keras.Model(approx.inputs, approx.get_layer("b").output)
    np.testing.assert_allclose(probe_approx.predict_on_batch(x)[:, 1:-1, 1:-1], probe.predict_on_batch(x)[:, 1:-1, 1:-1], rtol=1e-4, atol=1e-4)
    assert not np.allclose(probe_approx.predict_on_batch(x), probe.predict_on_batch(x), atol=1e-4)


def test_remove_zeroes_chosen_groups_for_shrink_and_rejects_foreign_groups():
    model = build(depthwise)
    groups = sk.structure.coupled_groups(model).prunable[:3]
    masks = sk.prune.remove(model, groups)
    assert masks and all(g.is_zero() for g in groups)
    assert_same_outputs(model, sk.shrink(model), (8, 8, 3))
    with pytest.raises(ValueError, match="does not have"):
        sk.prune.remove(build(residual), groups)
    with pytest.raises(ValueError, match="exactly one of channels= or macs="):
        sk.prune.to_target(model)
    with pytest.raises(ValueError, match="criterion must be one of"):
        sk.prune.to_target(model, macs=0.5, criterion="taylor")


@pytest.mark.slow
def test_mobilenet_v2_journey_removes_what_the_report_predicts():
    model = keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3), classes=10, alpha=0.5)
    randomize_batch_norms(model)
    selection = sk.prune.to_target(model, macs=0.5, criterion="bn_gamma")
    predicted = sk.analysis.report(model, tau=0)
    shrunk = sk.shrink(model)
    assert_same_outputs(model, shrunk, (32, 32, 3))
    assert predicted.macs == selection.macs_after == sk.analysis.report(shrunk, tau=0).base_macs <= 0.5 * predicted.base_macs
    assert predicted.learned_total_params == shrunk.count_params() < 0.7 * model.count_params()

"""Learning sparsity on coupled groups: the coupled group lasso and ADMM with block="coupled"."""

import warnings

import keras
import numpy as np
import pytest

import sparse_keras as sk
from sparse_keras.regularizers import CoupledGroupLasso
from tests.shrinking.test_shrink import assert_same_outputs
from tests.sparsity.test_structure import build, depthwise, squeeze_excite


def data(n=32):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 8, 8, 3)).astype("float32"), rng.normal(size=(n, 3)).astype("float32")


def coupled_loss(model):
    return float(sum(keras.ops.convert_to_numpy(loss) for loss in model.losses))


@pytest.mark.parametrize("norm", ["l2", "normalized"])
def test_the_penalty_is_the_sum_of_group_norms_over_every_trainable_slice(norm):
    model = build(squeeze_excite)
    sk.regularize(model, CoupledGroupLasso(0.01, norm=norm))
    groups = sk.structure.coupled_groups(model).prunable
    scale = [1.0 if norm == "l2" else 1.0 / np.sqrt(g.size()) for g in groups]
    expected = 0.01 * sum(np.sqrt(g.sq_norm()) * s for g, s in zip(groups, scale))
    np.testing.assert_allclose(coupled_loss(model), expected, rtol=1e-4)


def test_network_slimming_is_l1_on_the_batch_norm_scales_of_the_groups():
    model = build(depthwise)
    sk.regularize(model, CoupledGroupLasso(0.1, criterion="bn_gamma"))
    gammas = np.concatenate([g.values_of(("gamma", "norm")) for g in sk.structure.coupled_groups(model).prunable])
    np.testing.assert_allclose(coupled_loss(model), 0.1 * np.abs(gammas).sum(), rtol=1e-5)


def test_training_through_zero_groups_stays_finite_and_the_penalty_is_training_state(tmp_path):
    model = build(squeeze_excite)
    sk.structure.zero_groups(sk.structure.coupled_groups(model).prunable[:4])
    sk.regularize(model, CoupledGroupLasso(0.01))
    model.compile(keras.optimizers.SGD(0.01), "mse")
    x, y = data()
    history = model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert all(np.isfinite(keras.ops.convert_to_numpy(v)).all() for v in model.trainable_variables)
    model.save(tmp_path / "m.keras")  # the bound penalty is not written
    assert not keras.saving.load_model(tmp_path / "m.keras").losses
    sk.regularize(model, CoupledGroupLasso(0.02))  # re-binding replaces, never stacks
    assert len(model.losses) == 1
    sk.unregularize(model)
    assert not model.losses
    with pytest.raises(ValueError, match="attach it with sparse_keras.regularize"):
        CoupledGroupLasso(0.01)(model.trainable_variables[0])


@pytest.mark.slow
def test_coupled_lasso_training_then_thresholding_shrinks_exactly_as_reported():
    model = build(depthwise)
    groups = sk.structure.coupled_groups(model).prunable
    before = np.array([g.sq_norm() for g in groups])
    sk.regularize(model, CoupledGroupLasso(0.3))
    model.compile(keras.optimizers.SGD(0.1), "mse")
    x, _ = data(64)
    model.fit(x, x.mean(axis=(1, 2)) * 3, epochs=6, batch_size=8, verbose=0)
    assert np.mean([g.sq_norm() for g in groups] < before) > 0.9  # the penalty pulls whole groups down
    sk.unregularize(model)
    selection = sk.prune.threshold_groups(model, relative=0.3)
    assert selection.groups and selection.channels_after >= 3
    predicted = sk.analysis.report(model, tau=0)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="shrink keeps")
        shrunk = sk.shrink(model)
    assert_same_outputs(model, shrunk, (8, 8, 3))
    assert predicted.learned_total_params == shrunk.count_params() < model.count_params()


def test_coupled_admm_through_fit_zeroes_whole_groups_that_shrink_removes():
    model = build(depthwise)
    kinds = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D)
    names = [layer.name for layer in model.layers if isinstance(layer, kinds)]
    mu = {name: 12.0 if name == names[0] else 6.0 for name in names}
    admm = sk.admm.ADMM(penalty="l0", mu=mu, rho=10.0, block="coupled", guard=0.75)
    model.compile(keras.optimizers.SGD(0.01), "mse")
    x, y = data()
    history = model.fit(x, y, epochs=3, batch_size=8, verbose=0, callbacks=[admm])
    assert history.history["admm_sparsity"][-1] > 0
    admm.finalize()
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)  # masked: the dead groups stay zero, BN included
    dead = [g for g in sk.structure.coupled_groups(model).prunable if g.is_zero()]
    assert dead
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="shrink keeps")
        shrunk = sk.shrink(model)
    assert_same_outputs(model, shrunk, (8, 8, 3))
    assert shrunk.count_params() < model.count_params()


def test_per_layer_mu_is_checked():
    model = build(depthwise)
    with pytest.raises(ValueError, match="names no value for the sparsified layers"):
        sk.admm.ADMM(mu={"nope": 1.0}).attach(model)
    with pytest.raises(ValueError, match=r"mu\['a'\] must be a finite positive float"):
        sk.admm.ADMM(mu={"a": -1.0})
    admm = sk.admm.ADMM(mu=lambda layer: 0.5 if "depthwise" in layer.name else 2.0).attach(model)
    assert {admm.mu_of(t.slot.layer) for t in admm.targets} == {0.5, 2.0}

"""ADMM's algorithm driven by hand, without model.fit or any Keras callback (Kiaee et al. 2016, eq. 5-10)."""

import keras
import numpy as np
import pytest

from sparse_keras.admm import ADMMAlgorithm, MuPath
from sparse_keras.sparsity import admm_kernels


def dense_model():
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(6, name="hidden")(inputs)
    return keras.Model(inputs, keras.layers.Dense(2, name="classifier")(hidden))


def kernel(model):
    return keras.ops.convert_to_numpy(model.get_layer("hidden").kernel)


def test_an_update_is_the_f_step_and_the_dual_step_of_the_paper():
    model = dense_model()
    algorithm = ADMMAlgorithm(penalty="l1", mu=0.5, rho=10.0, block="filter", guard=None)
    assert not isinstance(algorithm, keras.callbacks.Callback)
    algorithm.attach(model)
    target = algorithm.targets[0]
    w = np.linspace(-1.0, 1.0, 24).reshape(4, 6).astype("float32")
    model.get_layer("hidden").kernel.assign(w)  # as if a W-step had trained to w
    result = algorithm.update()
    # F-step: Gamma = 0, so V = W; one output unit of a Dense kernel is a block, soft-thresholded at mu/rho.
    norms = np.linalg.norm(w, axis=0)
    expected_f = w * np.maximum(1 - 0.05 / norms, 0)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(target.f), expected_f, rtol=1e-5, atol=1e-7)
    # Dual step: Gamma += rho (W - F).
    np.testing.assert_allclose(keras.ops.convert_to_numpy(target.gamma), 10.0 * (w - expected_f), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(result["primal_residual"], np.linalg.norm(w - expected_f), rtol=1e-4)
    # The W-step penalty rho/2 ||W - (F - Gamma/rho)||^2 is on the kernel, so any loop's sum(model.losses) has it.
    u = expected_f - (w - expected_f)
    np.testing.assert_allclose(float(sum(keras.ops.convert_to_numpy(x) for x in model.losses)),
                               5.0 * np.sum(np.square(w - u)), rtol=1e-4)


def test_end_epoch_follows_algorithm_1_along_a_mu_path():
    model = dense_model()
    path = MuPath([1e-3, 1e3], delta=1, nu=1, xi=1)  # one epoch per W-step, one iteration per mu
    algorithm = ADMMAlgorithm(penalty="l1", mu=path, rho=1.0, guard=None)
    algorithm.attach(model)
    assert algorithm.total_epochs == 4  # per mu: one ADMM iteration and one epoch of masked fine-tuning
    algorithm.end_epoch(0)
    assert algorithm.phase == "finetune" and algorithm.masks  # the iteration cap stopped mu_1: W := F, masks on
    algorithm.end_epoch(1)
    assert (algorithm.phase, algorithm.mu_index, algorithm.masks) == ("admm", 1, {})  # released for mu_2
    assert len(algorithm.history) == 1 and algorithm.history[0]["mu"] == pytest.approx(1e-3)
    algorithm.end_epoch(2, logs := {})
    assert logs["admm_sparsity"] == 1.0  # the F-step's numbers go into the epoch's logs
    # mu_2 = 1e3 zeroes every block of the hidden layer; finalize copied F into the kernel.
    assert not kernel(model).any()
    algorithm.end_epoch(3, {"loss": 0.5})
    assert algorithm.phase == "done" and model.stop_training
    assert algorithm.history[1]["loss"] == 0.5 and algorithm.history[1]["sparsity"] == 1.0


def test_state_round_trips_without_a_callback(tmp_path):
    model = dense_model()
    algorithm = ADMMAlgorithm(mu=0.1, rho=5.0, guard=None).attach(model)
    model.get_layer("hidden").kernel.assign(np.ones((4, 6), "float32"))
    algorithm.update()
    algorithm.save(tmp_path / "admm.npz")
    again = ADMMAlgorithm(mu=0.1, rho=5.0, guard=None).attach(model).load(tmp_path / "admm.npz")
    for a, b in zip(algorithm.targets, again.targets):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a.f), keras.ops.convert_to_numpy(b.f))
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a.gamma), keras.ops.convert_to_numpy(b.gamma))


@pytest.mark.parametrize("stopping, expected", [("paper", False), ("boyd", True)])
def test_the_stopping_tests(stopping, expected):
    # Residuals 1e-3 on 100 weights of norm 1: above the paper's absolute epsilon=1e-4, below Boyd's
    # sqrt(n) * eps + 1e-2 * ||W|| = 1e-3 + 1e-2.
    assert admm_kernels.converged(stopping, 1e-4, 1.0, 100, 1e-3, 1e-3, 1.0, 1.0, 1e-8) is expected

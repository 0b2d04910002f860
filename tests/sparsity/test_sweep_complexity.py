"""Omega_3 (the structured-sparsity paper eq. 34): per-layer weights r_i c_i d_(i-1) and the penalty they give, by hand."""
import keras
import numpy as np
import pytest

from sparse_keras import regularizers
from sparse_keras.sparsity import complexity


def _tiny_model():
    """8x8x2 input; conv1: 4 kernels 3x3, stride 1 (64 positions); conv2: 3 kernels 3x3, stride 2 (16)."""
    inputs = keras.Input((8, 8, 2))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv1")(inputs)
    x = keras.layers.Conv2D(3, 3, strides=2, padding="same", name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(5, name="classifier")(x))


def _half_ring_masks(s):
    """The nested groups by hand: G_n = {min(p, q) < ceil(n/2) or max(p, q) > s - 1 - floor(n/2)}."""
    p, q = np.meshgrid(np.arange(s), np.arange(s), indexing="ij")
    return [(np.minimum(p, q) < (n + 1) // 2) | (np.maximum(p, q) > s - 1 - n // 2) for n in range(1, s + 1)]


def _relaxed_sizes(kernel):
    """s'_ij = sum_n ||k_ij(G_n)|| for every output kernel j."""
    return sum(np.sqrt((kernel**2 * mask[:, :, None, None]).sum(axis=(0, 1, 2))) for mask in _half_ring_masks(3))


def test_layer_costs_are_positions_times_input_channels():
    model = _tiny_model()
    assert complexity.layer_costs(model) == {"conv1": 64 * 2, "conv2": 16 * 4}


def test_weights_are_normalised_costs_and_kernel_weights_add_the_kernel_area():
    model = complexity.regularize_by_complexity(_tiny_model(), regularizers.NestedHalfRing(1.0))
    weights = complexity.complexity_weights(model)
    assert weights["conv1"]["size"] == pytest.approx(128 / 96) and weights["conv2"]["size"] == pytest.approx(64 / 96)
    assert complexity.complexity_weights(model, normalize=False)["conv2"] == {"size": 64.0, "kernel": 64.0 * 9}
    assert "classifier" not in weights  # never regularized, so never weighted


def test_omega3_penalty_equals_eq34_by_hand_and_is_idempotent():
    alpha = 1e-2
    model = _tiny_model()
    complexity.regularize_by_complexity(model, [regularizers.NestedHalfRing(alpha), regularizers.KernelGroupLasso(alpha)])
    complexity.regularize_by_complexity(model, [regularizers.NestedHalfRing(alpha), regularizers.KernelGroupLasso(alpha)])
    expected = 0.0
    for name, cost in (("conv1", 128 / 96), ("conv2", 64 / 96)):
        kernel = keras.ops.convert_to_numpy(model.get_layer(name).kernel)
        expected += alpha * cost * np.sum(_relaxed_sizes(kernel) ** 2)  # eq. 34, the squared relaxed sizes
        expected += alpha * cost * np.sum(np.sqrt((kernel**2).sum(axis=(0, 1, 2))))  # weighted Omega_1
    model(np.zeros((1, 8, 8, 2), "float32"))
    assert float(sum(keras.ops.convert_to_numpy(loss) for loss in model.losses)) == pytest.approx(expected, rel=1e-5)


def test_weights_survive_a_save_and_load(tmp_path):
    model = complexity.regularize_by_complexity(_tiny_model(), regularizers.NestedHalfRing(1e-3))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    reg = loaded.get_layer("conv2").kernel_regularizer
    assert isinstance(reg, regularizers.NestedHalfRing) and reg.squared
    assert reg.strength == pytest.approx(1e-3 * 64 / 96)

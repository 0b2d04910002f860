"""CSCConv2D (Dai et al. 2022 appendix A): operators, FISTA against an independent lasso solver, step size.

The numpy reference builds the synthesis operator A as a dense matrix straight from the definition (atom o
placed at (i s - p, j s - p), cropped to the image), independently of the layer's convolutions.
"""

import keras
import numpy as np
import pytest

from sparse_keras import callbacks
from sparse_keras.layers import CSCConv2D
from sparse_keras.layers import csc
from sparse_keras.testing import gradient, run_layer_test, to_numpy


def synthesis_matrix(kernel, input_size, strides):
    """Dense A: column (i, j, o) of the code is atom o placed with its top-left at (i s - p, j s - p)."""
    kh, kw, channels, filters = kernel.shape
    height, width = input_size
    p = (kh - 1) // 2
    code_h, code_w = (height + 2 * p - kh) // strides + 1, (width + 2 * p - kw) // strides + 1
    matrix = np.zeros((height, width, channels, code_h, code_w, filters))
    for i in range(code_h):
        for j in range(code_w):
            for u in range(kh):
                for v in range(kw):
                    row, col = i * strides - p + u, j * strides - p + v
                    if 0 <= row < height and 0 <= col < width:
                        matrix[row, col, :, i, j, :] = kernel[u, v]
    return matrix.reshape(height * width * channels, code_h * code_w * filters), (code_h, code_w, filters)


def lasso_ista(matrix, x, lam, non_negative, iterations=20000):
    """Plain (proximal gradient) ISTA in float64 with step 1 / ||A||^2: the independent solver."""
    step = 1.0 / np.linalg.norm(matrix, 2) ** 2
    z = np.zeros(matrix.shape[1])
    for _ in range(iterations):
        u = z - step * matrix.T @ (matrix @ z - x)
        z = np.maximum(u - lam * step, 0) if non_negative else np.sign(u) * np.maximum(np.abs(u) - lam * step, 0)
    return z


def lasso_objective(matrix, x, z, lam):
    return lam * np.abs(z).sum() + 0.5 * np.sum((x - matrix @ z) ** 2)


def true_lipschitz(layer):
    matrix, _ = synthesis_matrix(to_numpy(layer.kernel).astype("float64"), layer.input_size, layer.strides)
    return np.linalg.norm(matrix, 2) ** 2


def built_layer(input_shape=(7, 6, 2), **kwargs):
    layer = CSCConv2D(**{"filters": 3, "kernel_size": 3, **kwargs})
    layer.build((None, *input_shape))
    return layer


@pytest.mark.parametrize(
    "input_shape, kernel_size, strides",
    [((6, 6, 2), 3, 1), ((8, 8, 2), 3, 2), ((7, 5, 2), 3, 2), ((10, 10, 3), 7, 2), ((6, 6, 2), 1, 2)],
)
def test_operators_match_the_definition_and_are_adjoint(input_shape, kernel_size, strides):
    rng = np.random.default_rng(1)
    layer = built_layer(input_shape, kernel_size=kernel_size, strides=strides)
    matrix, code_shape = synthesis_matrix(to_numpy(layer.kernel), input_shape[:2], strides)
    x = rng.normal(size=(1, *input_shape)).astype("float32")
    z = rng.normal(size=(1, *code_shape)).astype("float32")
    np.testing.assert_allclose(to_numpy(layer.synthesis(z)).ravel(), matrix @ z.ravel(), atol=1e-5)
    np.testing.assert_allclose(to_numpy(layer.analysis(x)).ravel(), matrix.T @ x.ravel(), atol=1e-5)
    # <A* x, z> = <x, A z>: the two operators of the layer are exact adjoints.
    np.testing.assert_allclose(
        np.sum(to_numpy(layer.analysis(x)) * z), np.sum(x * to_numpy(layer.synthesis(z))), rtol=1e-4
    )
    assert layer.compute_output_shape((None, *input_shape)) == (None, *code_shape)


def test_analysis_at_stride_1_is_a_same_padded_conv():
    layer = built_layer((6, 6, 2))
    conv = keras.layers.Conv2D(3, 3, padding="same", use_bias=False)
    conv.build((None, 6, 6, 2))
    conv.kernel.assign(layer.kernel)
    x = np.random.default_rng(0).normal(size=(2, 6, 6, 2)).astype("float32")
    np.testing.assert_allclose(to_numpy(layer.analysis(x)), to_numpy(conv(x)), atol=1e-5)


@pytest.mark.parametrize("non_negative, strides", [(True, 1), (False, 2)])
def test_many_fista_iterations_reach_the_lasso_optimum(non_negative, strides):
    # Fewer code entries than pixels (72 or 36 vs 108): A has full column rank, the optimum is unique.
    lam, filters = 0.1, 2 if strides == 1 else 4
    layer = built_layer((6, 6, 3), filters=filters, lam=lam, n_iter=100, strides=strides, non_negative=non_negative)
    x = np.random.default_rng(2).normal(size=(1, 6, 6, 3)).astype("float32")
    z = to_numpy(layer(x)).astype("float64").ravel()
    matrix, _ = synthesis_matrix(to_numpy(layer.kernel).astype("float64"), (6, 6), strides)
    reference = lasso_ista(matrix, x.ravel().astype("float64"), lam, non_negative)
    best = lasso_objective(matrix, x.ravel(), reference, lam)
    assert lasso_objective(matrix, x.ravel(), z, lam) <= best * (1 + 1e-4) + 1e-6
    np.testing.assert_allclose(z, reference, atol=1e-3)
    if non_negative:
        assert z.min() >= 0.0
    assert 0 < np.mean(z == 0) < 1  # a genuinely sparse, non-trivial code


def test_two_iterations_follow_eq_a1_by_hand():
    layer = built_layer((5, 5, 2), lam=0.3)
    x = np.random.default_rng(3).normal(size=(2, 5, 5, 2)).astype("float32")
    t = float(to_numpy(layer.step_size))
    z1 = np.maximum(t * to_numpy(layer.analysis(x)) - 0.3 * t, 0)
    z2 = np.maximum(z1 + t * to_numpy(layer.analysis(x - to_numpy(layer.synthesis(z1)))) - 0.3 * t, 0)
    np.testing.assert_allclose(to_numpy(layer(x)), z2, atol=1e-5)


@pytest.mark.parametrize("strides", [1, 2])
def test_step_size_is_between_0_8_and_1_over_the_true_lipschitz_constant(strides):
    layer = built_layer((6, 6, 3), filters=4, strides=strides)
    bound = true_lipschitz(layer)
    assert 0.8 / bound <= float(to_numpy(layer.step_size)) <= 1.0 / bound
    np.testing.assert_allclose(np.sqrt(np.sum(to_numpy(layer.kernel) ** 2, axis=(0, 1, 2))), 1.0, rtol=1e-5)
    # The compiled (while_loop) refresh, warm-started from the stored vector, only sharpens the estimate.
    vector, eigenvalue = layer.power_iteration(compiled=True)
    assert 0.9 / float(to_numpy(layer.step_size)) * (1 - 1e-5) <= float(to_numpy(eigenvalue)) <= bound * (1 + 1e-5)
    np.testing.assert_allclose(float(to_numpy(eigenvalue)), bound, rtol=0.02)
    np.testing.assert_allclose(np.sum(to_numpy(vector) ** 2), 1.0, rtol=1e-5)


def _tiny_model(**csc_kwargs):
    inputs = keras.Input((8, 8, 3))
    z = CSCConv2D(6, 3, name="csc", **csc_kwargs)(inputs)
    outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(z))
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=keras.optimizers.SGD(2.0),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def _tiny_data():
    rng = np.random.default_rng(4)
    return rng.normal(size=(8, 8, 8, 3)).astype("float32"), rng.integers(0, 2, size=(8,))


def test_fit_refreshes_the_step_size_before_every_forward_pass():
    model = _tiny_model()
    layer = model.get_layer("csc")
    x, y = _tiny_data()
    # A dictionary whose atoms are all alike has a far larger L than the random one the step was set for.
    atom = np.random.default_rng(8).normal(size=(3, 3, 3, 1))
    layer.kernel.assign(np.repeat(atom / np.linalg.norm(atom), 6, axis=-1).astype("float32"))
    expected = 0.9 / true_lipschitz(layer)
    assert float(to_numpy(layer.step_size)) > 2 * expected  # stale until a training forward pass
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)  # the forward pass of its one step refreshes t
    np.testing.assert_allclose(float(to_numpy(layer.step_size)), expected, rtol=0.02)
    # The UnitNorm constraint renormalised every atom after the optimizer step.
    np.testing.assert_allclose(np.sqrt(np.sum(to_numpy(layer.kernel) ** 2, axis=(0, 1, 2))), 1.0, rtol=1e-4)
    random_atoms = np.random.default_rng(9).normal(size=(3, 3, 3, 6))
    layer.kernel.assign((random_atoms / np.sqrt(np.sum(random_atoms**2, axis=(0, 1, 2)))).astype("float32"))
    model(x, training=False)  # another L now, but inference reads t and never refreshes it
    np.testing.assert_allclose(float(to_numpy(layer.step_size)), expected, rtol=0.02)


def test_refresh_callback_leaves_the_step_of_the_final_dictionary():
    model = _tiny_model()
    layer = model.get_layer("csc")
    x, y = _tiny_data()
    model.fit(x, y, batch_size=4, epochs=2, validation_data=(x, y), verbose=0,
              callbacks=[callbacks.RefreshCSCStepSize()])
    bound = true_lipschitz(layer)
    assert 0.8 / bound <= float(to_numpy(layer.step_size)) <= 1.0 / bound
    np.testing.assert_allclose(float(to_numpy(layer.step_size)), 0.9 / bound, rtol=0.02)


def test_inference_uses_the_frozen_step_and_refresh_can_be_turned_off():
    model = _tiny_model(refresh_step_size=False)
    layer = model.get_layer("csc")
    before = float(to_numpy(layer.step_size))
    x, y = _tiny_data()
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    assert float(to_numpy(layer.step_size)) == before
    assert csc.update_step_sizes(model)["csc"] != pytest.approx(before, rel=1e-3)


def test_gradients_reach_the_dictionary_through_both_operators():
    layer = built_layer((6, 6, 2))
    x = np.random.default_rng(5).normal(size=(2, 6, 6, 2)).astype("float32")
    kernel = to_numpy(layer.kernel)
    step = float(to_numpy(layer.step_size))

    def code_sum(k):
        return csc.fista(
            x,
            analysis=lambda v: layer.analysis(v, k),
            synthesis=lambda v: layer.synthesis(v, k),
            step=step,
            threshold=0.1 * step,
            n_iter=2,
        )

    grad = gradient(code_sum, kernel)
    assert np.all(np.isfinite(grad)) and np.abs(grad).max() > 0
    eps = 1e-3
    direction = np.random.default_rng(6).normal(size=kernel.shape).astype("float32")
    plus, minus = (np.sum(to_numpy(code_sum(kernel + sign * eps * direction))) for sign in (1, -1))
    numeric = (plus - minus) / (2 * eps)
    np.testing.assert_allclose(np.sum(grad * direction), numeric, rtol=2e-2)


@pytest.mark.parametrize(
    "code_shape, kernel_size, strides, output_size",
    [((6, 5, 3), 3, 1, (6, 5)), ((4, 4, 3), 3, 2, (8, 8)), ((4, 3, 3), 3, 2, (7, 5)), ((5, 5, 3), 7, 2, (10, 9)),
     ((3, 3, 3), 1, 2, (6, 6)), ((4, 4, 3), 5, 1, (4, 4)), ((4, 4, 3), 3, 2, (11, 6)), ((4, 4, 3), 3, 1, (2, 7))],
)
def test_phase_synthesis_equals_the_transposed_convolution_with_gradients(code_shape, kernel_size, strides,
                                                                         output_size):
    """The phase synthesis against its definition, values and both gradients, on every backend."""
    rng = np.random.default_rng(11)
    z = rng.normal(size=(2, *code_shape)).astype("float32")
    kernel = rng.normal(size=(kernel_size, kernel_size, 2, code_shape[-1])).astype("float32")
    weights = rng.normal(size=(2, *output_size, 2)).astype("float32")  # a random cotangent

    def weighted(synthesis, z, kernel):
        return synthesis(keras.ops.convert_to_tensor(z), keras.ops.convert_to_tensor(kernel), strides,
                         output_size) * weights

    fast, reference = csc.phase_synthesis, csc.transposed_synthesis
    np.testing.assert_allclose(to_numpy(weighted(fast, z, kernel)), to_numpy(weighted(reference, z, kernel)),
                               atol=1e-5)
    grad_z = [gradient(lambda v, f=f: weighted(f, v, kernel), z) for f in (fast, reference)]
    grad_k = [gradient(lambda v, f=f: weighted(f, z, v), kernel) for f in (fast, reference)]
    np.testing.assert_allclose(grad_z[0], grad_z[1], atol=1e-4)
    np.testing.assert_allclose(grad_k[0], grad_k[1], atol=1e-4)


class PhaseCSCConv2D(CSCConv2D):
    """The layer with its synthesis pinned to one implementation, whatever the backend's default."""

    synthesis_fn = staticmethod(csc.phase_synthesis)

    def synthesis(self, z, kernel=None, output_size=None):
        kernel = self.kernel if kernel is None else kernel
        output_size = self.input_size if output_size is None else output_size
        return self.synthesis_fn(z, keras.ops.cast(kernel, z.dtype), self.strides, output_size)


class TransposedCSCConv2D(PhaseCSCConv2D):
    """The layer's former synthesis (still used on TensorFlow): a transposed convolution."""

    synthesis_fn = staticmethod(csc.transposed_synthesis)


@pytest.mark.parametrize("kernel_size, strides, non_negative", [(3, 1, True), (3, 2, True), (7, 2, False)])
def test_unrolled_fista_codes_and_gradients_equal_the_transposed_reference(kernel_size, strides, non_negative):
    """The training-mode layer (power iteration, 3 FISTA iterations), both syntheses, on every backend."""
    kwargs = {"filters": 4, "kernel_size": kernel_size, "strides": strides, "n_iter": 3, "non_negative": non_negative}
    x = np.random.default_rng(12).normal(size=(2, 9, 8, 3)).astype("float32")
    layers = []
    for cls in (PhaseCSCConv2D, TransposedCSCConv2D):
        keras.utils.set_random_seed(3)
        layer = cls(**kwargs)
        layer.build((None, 9, 8, 3))
        layers.append(layer)
    fast, reference = layers
    np.testing.assert_allclose(to_numpy(fast.kernel), to_numpy(reference.kernel))
    np.testing.assert_allclose(to_numpy(fast(x, training=True)), to_numpy(reference(x, training=True)), atol=1e-5)
    np.testing.assert_allclose(to_numpy(fast.step_size), to_numpy(reference.step_size), rtol=1e-5)
    cotangent = np.random.default_rng(13).normal(size=fast.compute_output_shape(x.shape)).astype("float32")

    def code(layer, v, k):
        step = keras.ops.convert_to_tensor(to_numpy(layer.step_size))
        return cotangent * csc.fista(v, analysis=lambda u: layer.analysis(u, k),
                                     synthesis=lambda u: layer.synthesis(u, k), step=step,
                                     threshold=0.1 * step, n_iter=3, non_negative=non_negative)

    kernel = to_numpy(fast.kernel)
    grads_x = [gradient(lambda v, layer=layer: code(layer, v, kernel), x) for layer in layers]
    grads_k = [gradient(lambda k, layer=layer: code(layer, x, k), kernel) for layer in layers]
    assert np.abs(grads_k[0]).max() > 0
    np.testing.assert_allclose(grads_x[0], grads_x[1], atol=1e-4)
    np.testing.assert_allclose(grads_k[0], grads_k[1], atol=1e-4)


def test_larger_lambda_at_test_time_gives_sparser_codes():
    layer = built_layer((6, 6, 2))
    x = np.random.default_rng(7).normal(size=(2, 6, 6, 2)).astype("float32")
    zeros = np.mean(to_numpy(layer(x)) == 0)
    layer.set_lam(0.8)
    assert np.mean(to_numpy(layer(x)) == 0) > zeros
    with pytest.raises(ValueError, match="lam=-1"):
        layer.set_lam(-1)


def test_learnable_lambda_is_a_trainable_non_negative_scalar():
    layer = built_layer((6, 6, 2), lam_trainable=True)
    assert [w.name for w in layer.trainable_weights] == ["kernel", "lam"]
    assert not built_layer((6, 6, 2)).lam.trainable


def test_reconstruct_is_the_synthesis_operator():
    layer = built_layer((8, 8, 2), strides=2)
    z = to_numpy(layer(np.ones((1, 8, 8, 2), "float32")))
    assert to_numpy(layer.reconstruct(z)).shape == (1, 8, 8, 2)
    np.testing.assert_allclose(to_numpy(layer.reconstruct(z)), to_numpy(layer.synthesis(z)))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"filters": 0}, "filters=0"),
        ({"kernel_size": 4}, "kernel_size=4"),
        ({"strides": 3}, "strides=3"),
        ({"lam": -0.1}, "lam=-0.1"),
        ({"n_iter": 0}, "n_iter=0"),
        ({"step_factor": 1.5}, "step_factor=1.5"),
    ],
)
def test_bad_arguments_name_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CSCConv2D(**{"filters": 3, "kernel_size": 3, **kwargs})


def test_unknown_spatial_size_is_refused():
    with pytest.raises(ValueError, match="known input height"):
        CSCConv2D(3, 3).build((None, None, None, 2))


@pytest.mark.parametrize(
    "kwargs, output_shape, counts",
    [
        # The dictionary is trained; lam, the power vector and the step are not.
        (dict(lam=0.2, n_iter=3, strides=2, non_negative=False), (2, 4, 4, 6), (1, 3)),
        (dict(lam_trainable=True), (2, 8, 8, 6), (2, 2)),
    ],
    ids=["stride2-lasso", "learned-lambda"],
)
def test_layer_contract(kwargs, output_shape, counts):
    # One power iteration per refresh leaves build's estimate of L rough, so the refresh in the forward
    # pass of the fit step must move the step size: the check that it reaches the variable through fit.
    run_layer_test(
        CSCConv2D, dict(filters=6, kernel_size=3, power_iterations=1, **kwargs), input_shape=(2, 8, 8, 3),
        expected_output_shape=output_shape, expected_num_trainable_weights=counts[0],
        expected_num_non_trainable_weights=counts[1], expected_updated_variables=("step_size", "power_vector"),
    )


@pytest.mark.tf_only
def test_saved_model_export_carries_the_frozen_step(tmp_path):
    import tensorflow as tf

    model = _tiny_model()
    x, _ = _tiny_data()
    path = str(tmp_path / "export")
    model.export(path, format="tf_saved_model")
    served = tf.saved_model.load(path)
    np.testing.assert_allclose(served.serve(tf.constant(x)).numpy(), model.predict(x, verbose=0), atol=1e-5)

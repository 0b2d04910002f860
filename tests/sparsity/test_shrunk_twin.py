"""ShrunkTwin: fine-tuning the shrunk model is fine-tuning the masked one, at the shrunk model's cost."""

import keras
import numpy as np
import pytest

from sparse_keras import shrink
from sparse_keras.sparsity import shrunk_twin as twin_lib
from sparse_keras.sparsity import masking

RNG = np.random.default_rng(0)
X = RNG.normal(size=(64, 12, 12, 3)).astype("float32")
Y = RNG.integers(0, 5, size=64)


def plain_cnn():
    inputs = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Conv2D(12, 3, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(16, activation="relu", name="fc1")(x)
    return keras.Model(inputs, keras.layers.Dense(5, name="fc2")(x))


def bn_cnn():
    """conv -> BN -> ReLU -> 1x1 conv: a zero kernel with a BN shift is a constant channel the 1x1 conv absorbs."""
    inputs = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name="conv1")(inputs)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(6, 1, activation="relu", name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(5, name="fc")(x))


def filter_masks(model, layers, keep):
    """Masks removing whole filters (kernel and bias) of ``layers``; ``keep[name]`` lists the kept filters."""
    masks = {}
    for name in layers:
        layer = model.get_layer(name)
        alive = np.zeros(layer.kernel.shape[-1], "float32")
        alive[keep[name]] = 1.0
        masks[layer.kernel.path] = np.broadcast_to(alive, layer.kernel.shape).copy()
        if getattr(layer, "bias", None) is not None:
            masks[layer.bias.path] = alive
    return masks


def fit(model, epochs=2):
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(X, Y, batch_size=16, epochs=epochs, shuffle=False, verbose=0)


def assert_same_outputs(a, b):
    expected = a.predict_on_batch(X[:8])
    np.testing.assert_allclose(b.predict_on_batch(X[:8]), expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())


def test_fine_tuning_the_twin_then_writing_back_equals_masked_fine_tuning():
    keras.utils.set_random_seed(1)
    masked = plain_cnn()
    keep = {"conv1": [0, 3, 4], "conv2": [1, 2, 5, 7, 11], "fc1": list(range(0, 16, 2))}
    masking.install_masks(masked, filter_masks(masked, keep, keep))
    reference = keras.models.clone_model(masked)
    reference.set_weights(masked.get_weights())
    masking.install_masks(reference, masking.current_masks(masked))

    twin = twin_lib.ShrunkTwin(masked)
    assert [twin.shrunk.get_layer(n).kernel.shape[-1] for n in ("conv1", "conv2", "fc1")] == [3, 5, 8]
    assert_same_outputs(masked, twin.shrunk)
    fit(twin.shrunk)
    twin.write_back()
    fit(reference)

    for got, expected in zip(masked.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    assert_same_outputs(twin.shrunk, masked)


def test_a_folded_constant_channel_and_batch_norm_statistics_come_back_exactly():
    keras.utils.set_random_seed(2)
    model = bn_cnn()
    bn = model.get_layer("bn1")
    bn.set_weights([np.full(8, 1.2), np.linspace(0.1, 0.8, 8), np.zeros(8), np.ones(8)])
    # Filters 1 and 6 are removed; BN keeps shifting them to relu(beta) > 0, which conv2 folds into its bias.
    masks = filter_masks(model, ["conv1"], {"conv1": [0, 2, 3, 4, 5, 7]})
    masking.install_masks(model, masks)
    twin = twin_lib.ShrunkTwin(model)
    assert twin.shrunk.get_layer("bn1").gamma.shape == (6,)
    fit(twin.shrunk)  # BatchNormalization's moving statistics move too
    twin.write_back()

    assert_same_outputs(twin.shrunk, model)
    for got, expected in zip(shrink(model).get_weights(), twin.shrunk.get_weights()):
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    removed = np.asarray(keras.ops.convert_to_numpy(model.get_layer("conv1").kernel))[..., [1, 6]]
    assert not removed.any()


def test_masks_inside_kept_filters_go_with_the_twin_and_their_zeros_stay():
    keras.utils.set_random_seed(3)
    model = plain_cnn()
    masks = filter_masks(model, ["conv2"], {"conv2": [0, 1, 2, 3]})
    kernel_mask = masks[model.get_layer("conv2").kernel.path]
    kernel_mask[:, :, 5, 0] = 0.0  # one 3x3 kernel of a kept filter
    masking.install_masks(model, masks)
    twin = twin_lib.ShrunkTwin(model)
    assert set(masking.current_masks(twin.shrunk)) == {twin.shrunk.get_layer("conv2").kernel.path}
    fit(twin.shrunk)
    twin.write_back()
    kernel = np.asarray(keras.ops.convert_to_numpy(model.get_layer("conv2").kernel))
    assert not kernel[:, :, 5, 0].any() and not kernel[..., 4:].any()
    assert kernel[:, :, 4, 0].any()


def test_a_shrink_that_crops_kernels_cannot_be_written_back_and_names_the_layer():
    inputs = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(4, 5, padding="same", activation="relu", name="wide")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(5, name="fc")(keras.layers.GlobalAveragePooling2D()(x)))
    kernel = np.array(keras.ops.convert_to_numpy(model.get_layer("wide").kernel))
    kernel[[0, -1]] = 0.0
    kernel[:, [0, -1]] = 0.0  # every kernel learned 3x3: shrink crops the layer to a 3x3 conv
    model.get_layer("wide").kernel.assign(kernel)
    with pytest.raises(twin_lib.UnmappableShrink, match="wide/kernel"):
        twin_lib.ShrunkTwin(model)

"""Pictures of a briefly trained CSC layer (Dai et al. 2022 Fig. B.1, C.1, D.1): real PNGs with real content."""

import keras
import numpy as np
import pytest

from sparse_keras.reports import csc_pictures
from sparse_keras.layers import CSCConv2D


def _briefly_trained_model():
    rng = np.random.default_rng(0)
    # Bright squares vs bars: images with structure for the dictionary to learn.
    x = rng.normal(scale=0.1, size=(32, 12, 12, 3)).astype("float32")
    y = np.arange(32) % 2
    x[y == 0, 3:9, 3:9, :] += 1.0
    x[y == 1, :, 5:7, :] += 1.0
    inputs = keras.Input((12, 12, 3))
    z1 = CSCConv2D(8, 3, name="csc1")(inputs)
    z2 = CSCConv2D(8, 3, strides=2, name="csc2")(keras.layers.BatchNormalization()(z1))
    outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(z2))
    model = keras.Model(inputs, outputs)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss)
    model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    return model, x


def _assert_png_picture(path):
    image = __import__("matplotlib.image", fromlist=["imread"]).imread(path)
    assert image.ndim == 3 and image.shape[0] > 50 and image.shape[1] > 50
    assert np.std(image) > 0.01  # not a blank canvas


def test_pictures_from_a_trained_layer(tmp_path):
    model, x = _briefly_trained_model()
    # eq. B.2-B.3 through two CSC layers: A_1(A_2(z_2)) has the input's shape.
    reconstruction = csc_pictures.reconstruct_input(model, "csc2", x[:4], path=str(tmp_path / "reconstruction.png"))
    assert reconstruction.shape == (4, 12, 12, 3) and np.all(np.isfinite(reconstruction))
    # From the first layer the reconstruction is a picture of the input: strongly correlated with it.
    first = csc_pictures.reconstruct_input(model, "csc1", x[:4])
    cosine = np.sum(first * x[:4]) / (np.linalg.norm(first) * np.linalg.norm(x[:4]))
    assert cosine > 0.5, cosine
    _assert_png_picture(tmp_path / "reconstruction.png")

    csc_pictures.dictionary_grid(model.get_layer("csc1"), str(tmp_path / "atoms.png"))
    _assert_png_picture(tmp_path / "atoms.png")

    codes = keras.Model(model.input, model.get_layer("csc1").output)(x)
    zero_fraction = csc_pictures.code_histogram(codes, str(tmp_path / "codes.png"), title="csc1")
    assert zero_fraction == pytest.approx(np.mean(keras.ops.convert_to_numpy(codes) == 0))
    assert 0.0 < zero_fraction < 1.0
    _assert_png_picture(tmp_path / "codes.png")


def test_reconstruct_input_names_the_bad_layer():
    inputs = keras.Input((6, 6, 1))
    model = keras.Model(inputs, CSCConv2D(2, 3, name="csc")(inputs))
    with pytest.raises(ValueError, match="layer_name='dense'"):
        csc_pictures.reconstruct_input(model, "dense", np.zeros((1, 6, 6, 1)))

"""Files saved by earlier versions of sparse_keras still load, on every backend, with the same outputs.

``tests/fixtures/`` holds a ``.keras`` model written (by ``tests/fixtures/make_fixtures.py``) before the
modules moved into their subpackages, and the serialized :class:`~sparse_keras.admm.MuPath`. Keras finds
a custom class by its registered name (``"sparse_keras>ClassName"``), so these files load only while every
registered name stays as it was.
"""

import json
import re
import zipfile

import keras
import numpy as np

import sparse_keras as sk
from tests.fixtures import make_fixtures

PACKAGE = "sparse_keras"


def _registered_names_in(path):
    with zipfile.ZipFile(path) as archive:
        config = archive.read("config.json").decode("utf-8")
    return set(re.findall(r'"registered_name": "(sparse_keras>[^"]+)"', config))


def _mu_path_json():
    with open(make_fixtures.MU_PATH_FILE, encoding="utf-8") as f:
        return json.load(f)


def test_the_saved_model_loads_and_computes_what_it_computed_when_saved():
    model = keras.saving.load_model(make_fixtures.MODEL_FILE)
    saved = np.load(make_fixtures.OUTPUTS_FILE)
    outputs = keras.ops.convert_to_numpy(model(saved["inputs"]))
    np.testing.assert_allclose(outputs, saved["outputs"], rtol=1e-4, atol=1e-5)
    # The regularizers come back as the library's classes, with their arguments.
    nested = model.layers[1].kernel_regularizer
    assert isinstance(nested, sk.regularizers.NestedHalfRing) and nested.strength == 1e-4
    summed = model.layers[3].kernel_regularizer
    assert isinstance(summed, sk.regularizers.SumOfRegularizers)
    assert isinstance(summed.regularizers[0], sk.regularizers.KernelGroupLasso)
    assert isinstance(model.layers[3].kernel_initializer, sk.initializers.ChannelDCT)


def test_the_saved_mu_path_loads():
    path = keras.saving.deserialize_keras_object(_mu_path_json())
    assert isinstance(path, sk.admm.MuPath)
    assert (path.mus, path.delta, path.nu, path.xi) == ([1e-3, 1e-2, 1e-1], 2, 5, 3)


def test_the_fixtures_cover_every_registered_object():
    """A class registered later needs a fixture of its own (written before it ever moves)."""
    registered = {name for name in keras.saving.get_custom_objects() if name.startswith(PACKAGE + ">")}
    covered = (_registered_names_in(make_fixtures.MODEL_FILE) | _registered_names_in(make_fixtures.LATER_MODEL_FILE)
               | {_mu_path_json()["registered_name"]})
    assert registered == covered


def test_the_later_classes_file_loads_and_computes_what_it_computed_when_saved():
    model = keras.saving.load_model(make_fixtures.LATER_MODEL_FILE)
    assert isinstance(model.layers[-1], sk.layers.FusedBatchNormalization)
    saved = np.load(make_fixtures.LATER_OUTPUTS_FILE)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(saved["inputs"])), saved["outputs"], rtol=1e-4,
                               atol=1e-5)


def test_a_model_built_now_round_trips_through_a_keras_file(tmp_path):
    keras.utils.set_random_seed(0)
    model = make_fixtures.build()
    x = make_fixtures.fixed_input()
    model(x, training=True)
    expected = keras.ops.convert_to_numpy(model(x))
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x)), expected, rtol=1e-5, atol=1e-6)
    assert _registered_names_in(tmp_path / "model.keras") == _registered_names_in(make_fixtures.MODEL_FILE)

"""Test configuration shared by the whole suite.

`make test` runs the suite twice: under ``KERAS_BACKEND=tensorflow`` (everything) and under
``KERAS_BACKEND=jax`` (the backend-agnostic core; tests marked ``tf_only`` are skipped there).
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


def pytest_collection_modifyitems(config, items):
    if keras.backend.backend() == "tensorflow":
        return
    skip = pytest.mark.skip(reason=f"needs TensorFlow; backend is {keras.backend.backend()}")
    for item in items:
        if "tf_only" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from the same random state and a fresh Keras name scope."""
    keras.utils.set_random_seed(0)
    np.random.seed(0)
    # free_memory=False skips a full garbage collection per test (minutes over the suite on JAX).
    keras.backend.clear_session(free_memory=False)
    yield

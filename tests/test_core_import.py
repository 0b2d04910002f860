"""The core must import and work on JAX where TensorFlow is not installed (the GPU machine)."""

import subprocess
import sys
import textwrap

# A meta-path finder that makes `import tensorflow` (and tfds) fail as if the package were absent.
HIDE_TENSORFLOW = textwrap.dedent(
    """
    import importlib.abc, sys

    class _NoTensorFlow(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("tensorflow", "tensorflow_datasets", "tf_keras"):
                raise ModuleNotFoundError(f"No module named {name!r} (hidden by the test)")
            return None

    sys.meta_path.insert(0, _NoTensorFlow())
    """
)

USE_CORE = textwrap.dedent(
    """
    import numpy as np, keras, sparse_keras as sk
    from sparse_keras import analysis, prune

    assert keras.backend.backend() == "jax", keras.backend.backend()
    inputs = keras.Input((12, 12, 1))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(3)(x))
    sk.regularize(model, [sk.KernelGroupLasso(1e-3), sk.NestedHalfRing(1e-3)])
    model.compile("sgd", "sparse_categorical_crossentropy")
    model.fit(np.zeros((8, 12, 12, 1)), np.zeros(8), epochs=1, verbose=0)
    prune.threshold(model, 1e-3)
    analysis.report(model, 1e-3)
    loaded = [m for m in sys.modules if m.split(".")[0] in ("tensorflow", "tensorflow_datasets")]
    assert not loaded, loaded
    print("core ok")
    """
)


def test_core_imports_and_trains_on_jax_without_tensorflow():
    code = HIDE_TENSORFLOW + "\nimport sys, os\n" + USE_CORE
    env = {"KERAS_BACKEND": "jax", "PATH": "/usr/bin:/bin", "JAX_PLATFORMS": "cpu", "HOME": "/tmp"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "core ok" in result.stdout


def test_hiding_really_hides_tensorflow():
    # Guards the test above against a finder that silently stopped working.
    code = HIDE_TENSORFLOW + "\nimport tensorflow\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "hidden by the test" in result.stderr

"""sparse_keras: learn structured sparsity in Keras 3 CNNs, then ship the smaller model.

Design card
-----------
* Core (``sparse_keras.ops``, ``regularizers``, ``sparsity``, ``analysis``, ``models``) uses ``keras.ops``
  only, so it runs on the TensorFlow and the JAX backends; ``import sparse_keras`` works without
  TensorFlow installed (the GPU machine has JAX only).
* TensorFlow-only pieces (tfds input in ``sparse_keras.data``, tf.distribute loops and SavedModel
  export in the training binaries) are imported lazily.
* Runtime dependencies are pinned to the versions this project is tested with.
* Extras: ``test`` (pytest, hypothesis, scikit-learn, JAX on CPU for the backend check) and ``tfmot``
  (tensorflow-model-optimization + tf-keras, only for the peer baselines in ``benchmarks/``).
"""
from setuptools import find_packages, setup

INSTALL_REQUIRES = [
    "tensorflow-cpu==2.21.0",
    "keras==3.15.1",
    "tensorflow-datasets==4.9.10",
    "tensorboard==2.21.0",  # TensorFlow 2.21 no longer pulls it in; summaries need it
    "importlib_resources>=6.0",  # tfds 4.9.10 imports it without declaring it
    "absl-py>=2.1",
    "ml-collections>=1.0",
    "numpy>=1.26",
    "scipy>=1.12",
    "matplotlib>=3.8",
    "tqdm>=4.66",
]

EXTRAS = {
    "test": [
        "pytest>=8.0",
        "pytest-xdist>=3.5",
        "hypothesis>=6.100",
        "scikit-learn>=1.4",
        "jax[cpu]>=0.4.30",
    ],
    "tfmot": [
        "tensorflow-model-optimization==0.8.1",
        "tf-keras==2.21.0",
    ],
}

setup(
    name="sparse_keras",
    version="0.1.0",
    description="Learned structured sparsity for Keras 3 CNNs: regularizers, ADMM, LRSD, LST and CSC layers.",
    long_description=__doc__,
    python_requires=">=3.10",
    packages=find_packages(include=["sparse_keras", "sparse_keras.*", "train", "benchmarks", "configs", "configs.*"]),
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
)

"""sparse_keras: learn structured sparsity in Keras 3 CNNs, then ship the smaller model.

The core imports ``keras`` only (any backend); TensorFlow-only parts (``sparse_keras.data``, the
training binaries' distribution and export code) are imported explicitly by whoever needs them.
"""
from sparse_keras import admm
from sparse_keras import analysis
from sparse_keras import benchmark
from sparse_keras import callbacks
from sparse_keras import initializers
from sparse_keras import layers
from sparse_keras import models
from sparse_keras import ops
from sparse_keras import prune
from sparse_keras import regularizers
from sparse_keras import shrinking
from sparse_keras import structure
from sparse_keras.regularizers import CoupledGroupLasso
from sparse_keras.regularizers import FilterGroupLasso
from sparse_keras.regularizers import KernelGroupLasso
from sparse_keras.regularizers import NestedHalfRing
from sparse_keras.regularizers import NestedRing
from sparse_keras.shrinking import shrink
from sparse_keras.sparsity.attach import regularize
from sparse_keras.sparsity.attach import unregularize

__version__ = "0.1.0"

__all__ = [
    "CoupledGroupLasso",
    "FilterGroupLasso",
    "KernelGroupLasso",
    "NestedHalfRing",
    "NestedRing",
    "admm",
    "analysis",
    "benchmark",
    "callbacks",
    "initializers",
    "layers",
    "models",
    "ops",
    "prune",
    "regularize",
    "regularizers",
    "shrink",
    "shrinking",
    "structure",
    "unregularize",
]

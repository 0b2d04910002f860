"""sparse_keras: learn structured sparsity in Keras 3 CNNs, then ship the smaller model.

What a user does, and where it lives:

* build a model: :mod:`sparse_keras.models` (``sk.models.get``), :mod:`sparse_keras.layers` (LST, CSC, LRSD),
  :mod:`sparse_keras.initializers`;
* learn sparsity: :func:`regularize` with a group lasso of :mod:`sparse_keras.regularizers`, or
  :mod:`sparse_keras.admm` (``sk.admm.ADMM``); coupled channel groups in :mod:`sparse_keras.structure`;
  LRSD layers put in by :mod:`sparse_keras.convert`;
* make it exact and small: :mod:`sparse_keras.prune` (thresholds, targets), :mod:`sparse_keras.lrsd`,
  :func:`shrink` (removes what is zero);
* read and measure it: :mod:`sparse_keras.analysis` (the learned architecture), :mod:`sparse_keras.benchmark`
  (latency), :mod:`sparse_keras.reports` (tables, the efficient frontier, plots).

The implementation lives in subpackages (``ops``, ``inspection``, ``layers``, ``shrinking``, ``sparsity``,
``models``, ``reports``, ``utils``); the modules above are their curated public faces. The core imports
``keras`` only (any backend); TensorFlow-only parts (``sparse_keras.data``, ``sparse_keras.training``) are
imported explicitly by whoever needs them.
"""
from sparse_keras import admm
from sparse_keras import analysis
from sparse_keras import benchmark
from sparse_keras import callbacks
from sparse_keras import convert
from sparse_keras import initializers
from sparse_keras import layers
from sparse_keras import lrsd
from sparse_keras import models
from sparse_keras import ops
from sparse_keras import prune
from sparse_keras import regularizers
from sparse_keras import reports
from sparse_keras import shrinking
from sparse_keras import structure
from sparse_keras.regularizers import CoupledGroupLasso
from sparse_keras.regularizers import FilterGroupLasso
from sparse_keras.regularizers import KernelGroupLasso
from sparse_keras.regularizers import NestedHalfRing
from sparse_keras.regularizers import NestedRing
from sparse_keras.shrinking import shrink
from sparse_keras.sparsity.attach import regularize
from sparse_keras.sparsity.shrunk_twin import ShrunkTwin
from sparse_keras.sparsity.shrunk_twin import UnmappableShrink
from sparse_keras.sparsity.attach import unregularize

__version__ = "0.1.0"

__all__ = [
    "CoupledGroupLasso",
    "FilterGroupLasso",
    "KernelGroupLasso",
    "NestedHalfRing",
    "NestedRing",
    "ShrunkTwin",
    "UnmappableShrink",
    "admm",
    "analysis",
    "benchmark",
    "callbacks",
    "convert",
    "initializers",
    "layers",
    "lrsd",
    "models",
    "ops",
    "prune",
    "regularize",
    "regularizers",
    "reports",
    "shrink",
    "shrinking",
    "structure",
    "unregularize",
]

"""sparse_keras: learn structured sparsity in Keras 3 CNNs, then ship the smaller model."""
from sparse_keras import ops
from sparse_keras import regularizers
from sparse_keras.sparsity.attach import regularize

__version__ = "0.1.0"

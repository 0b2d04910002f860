"""The library's own layers (LRSD factorised convolutions, LST blocks, CSC layers, a fused BatchNormalization).

Each family lives in its own module and registers its classes for Keras serialization on import;
importing the module here makes them available as ``sparse_keras.layers.<Name>``.
"""
from sparse_keras.layers.batch_norm import FusedBatchNormalization
from sparse_keras.layers.csc import CSCConv2D
from sparse_keras.layers.lst import GroupedPointwise, InvertedLSTBlock, LSTBlockI, LSTBlockII, SharedSpatialTransform, SoftThreshold  # noqa: E501
from sparse_keras.layers.lrsd import LRSDConv2D, LRSDDense  # Guo et al. 2019

"""The library's own layers (LRSD factorised convolutions, LST blocks, CSC layers).

Each family lives in its own module and registers its classes for Keras serialization on import;
importing the module here makes them available as ``sparse_keras.layers.<Name>``.
"""

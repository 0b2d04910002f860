"""The training binaries (``python -m train.train``, ``train.sweep``): flags in, a library call out."""

import os

# TensorFlow's C++ INFO lines, set before importing a binary's modules imports TensorFlow; a user's own
# setting wins. (TensorFlow 2.21 prints its oneDNN notice at import whatever this says.)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

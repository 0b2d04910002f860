"""TensorFlow-only input pipelines over tensorflow-datasets; import explicitly: ``import sparse_keras.data``.

``sparse_keras`` itself never imports this subpackage, so the core stays usable without TensorFlow.

* :func:`load` — a batched, prefetched ``tf.data.Dataset`` of ``(images, labels)`` for training or evaluation.
* :func:`epoch_loader` — ``seed -> dataset``, one training pass per epoch over examples read and decoded once.
* :func:`dataset_info` — ``(input_shape, num_classes, num_train_examples)`` without preparing any data.
* :class:`FashionMnistOffline` — tfds' Fashion-MNIST built from local IDX files (registered in tfds as
  ``fashion_mnist_offline``), so Fashion-MNIST works without internet.
* :class:`DatasetNotFoundError` — a dataset is not prepared and cannot be prepared from here (ImageNet's
  manual download, no internet); the message says where it looked and how to get it.

``imagenet2012`` and ``places365_small`` get the standard ImageNet crops per example
(:mod:`sparse_keras.data.imagenet_preprocessing`); evaluate them on ``CATALOG[name].eval_split``.
"""

from sparse_keras.data.catalog import AUGMENTATIONS
from sparse_keras.data.catalog import CATALOG
from sparse_keras.data.catalog import dataset_info
from sparse_keras.data.fashion_mnist import FashionMnistOffline
from sparse_keras.data.fashion_mnist import MissingSourceFilesError
from sparse_keras.data.pipeline import DatasetNotFoundError
from sparse_keras.data.pipeline import dataset_builder
from sparse_keras.data.pipeline import epoch_loader
from sparse_keras.data.pipeline import load

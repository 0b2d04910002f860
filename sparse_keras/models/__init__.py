"""Model families by name: ``sparse_keras.models.get("resnet20", num_classes=10)``.

The registry is generic (:mod:`sparse_keras.models.registry`); each family module registers its builders
on import, so importing it here is what makes its names available.
"""
from sparse_keras.models import admm_paper
from sparse_keras.models import plain_cnn
from sparse_keras.models import preact_resnet, resnet50, vgg_slim  # LRSD's networks (Guo et al. 2019)
from sparse_keras.models import resnet_cifar
from sparse_keras.models import lstnet, resnet_imagenet
from sparse_keras.models import sdnet
from sparse_keras.models import ssr_paper  # the structured-sparsity paper Table 2 base architectures
from sparse_keras.models import keras_file  # a saved (e.g. learned) architecture, optionally re-initialised
from sparse_keras.models.registry import available
from sparse_keras.models.registry import get
from sparse_keras.models.registry import register

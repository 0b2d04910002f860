"""LRSD VGGNet-7 on CIFAR-100 (Guo et al. 2019, Table 3).

  python -m train.train --config=configs/lrsd/vgg7_cifar100.py --workdir=runs/lrsd_vgg7_cifar100

Paper: Table 3 is missing from the seed text; the paper reports > 60% of the parameters removed.
VGGNet-7 is our definition (sparse_keras.models.vgg_slim).
"""
from configs.lrsd import base


def get_config():
    return base.cifar("vgg7_slim", "cifar100")

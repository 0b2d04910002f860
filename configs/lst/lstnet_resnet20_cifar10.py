"""LST-Net w.r.t. ResNet-20 (LST-II, official code) on CIFAR-10, the paper's recipe.

  python -m train.train --config=configs/lst/lstnet_resnet20_cifar10.py --workdir=runs/lstnet_resnet20_cifar10

177,954 trainable parameters, 34.3M multiply-adds. Paper accuracy (main Table 2): not in the seed [UNVERIFIED].
"""
from configs.lst import base


def get_config():
    return base.cifar("lstnet_resnet20", "cifar10")

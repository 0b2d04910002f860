"""LST-Net w.r.t. ResNet-56 (LST-II, official code) on CIFAR-100, the paper's recipe.

  python -m train.train --config=configs/lst/lstnet_resnet56_cifar100.py --workdir=runs/lstnet_resnet56_cifar100

Paper accuracy (main Table 2): not in the seed [UNVERIFIED].
"""
from configs.lst import base


def get_config():
    return base.cifar("lstnet_resnet56", "cifar100")

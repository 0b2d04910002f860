"""LST-Net w.r.t. ResNet-20 (LST-II, official code) on CIFAR-100, the paper's recipe.

  python -m train.train --config=configs/lst/lstnet_resnet20_cifar100.py --workdir=runs/lstnet_resnet20_cifar100

183,804 trainable parameters. Paper accuracy (main Table 2): not in the seed [UNVERIFIED].
"""
from configs.lst import base


def get_config():
    return base.cifar("lstnet_resnet20", "cifar100")

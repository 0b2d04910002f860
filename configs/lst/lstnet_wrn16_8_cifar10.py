"""LST-Net w.r.t. WRN-16-8 (official code: 4 LST-II blocks per stage) on CIFAR-10.

  python -m train.train --config=configs/lst/lstnet_wrn16_8_cifar10.py --workdir=runs/lstnet_wrn16_8_cifar10

Paper accuracy (main Table 2(b)): not in the seed [UNVERIFIED].
"""
from configs.lst import base


def get_config():
    return base.cifar("lstnet_wrn16_8", "cifar10")

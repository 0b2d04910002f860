"""SDNet-18-All without shortcuts on CIFAR-10 (the released yaml files' ``SHORTCUT: False``).

  python -m train.train --config=configs/csc/sdnet18_all_noshortcut_cifar10.py --workdir=runs/sdnet18_all_noshortcut_cifar10

11,000,138 trainable parameters (a block is just its two CSC + BN pairs: no additions, no 1x1 projections);
released checkpoint 94.89%.
"""
from configs.csc import base


def get_config():
    return base.cifar_config("sdnet18_all", "cifar10", shortcut=False)

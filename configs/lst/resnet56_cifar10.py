"""Baseline: ResNet-56 on CIFAR-10 with LST-Net's recipe (the side-by-side counterpart).

  python -m train.train --config=configs/lst/resnet56_cifar10.py --workdir=runs/resnet56_cifar10

He et al. 2016 report 6.97% error (their recipe: 164 epochs, wd 1e-4).
"""
from configs.lst import base


def get_config():
    return base.cifar("resnet56", "cifar10", lst=False)

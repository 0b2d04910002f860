"""The structured-sparsity paper, Table 2: the resnet `ssr_cifar20` base on CIFAR-10, Omega_1 + Omega_2 (+ Omega_3) over a log grid of alpha.

  python -m train.sweep --config=configs/ssr/ssr_cifar20_resnet_cifar10.py --workdir=runs/ssr_cifar20_resnet_cifar10

No numbers are reported by the draft (its results section is empty); see configs/ssr/base.py.
"""
from configs.ssr import base


def get_config():
    return base.cifar("ssr_cifar20", plain=False)

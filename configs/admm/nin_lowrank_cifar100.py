"""ADMM-l0 on `nin_lowrank`, `cifar100` via tfds (needs the dataset prepared or internet), the paper's setup.

  python -m train.train --config=configs/admm/nin_lowrank_cifar100.py --workdir=runs/nin_lowrank_cifar100

Paper (Kiaee et al. 2016 Tables 2-4): Low-rank NIN: 90.07% (CIFAR-10), 65.23% at 28.5% (CIFAR-100), about 98% at 28.6% (SVHN).
The authors' code values: rho = 100, mu on logspace(-4, 0, 20) from the second point, nu = 20, xi = 10.
"""
from configs.admm import base


def get_config(pretrained=None):
    return base.get_base_config("nin_lowrank", "cifar100", pretrained)

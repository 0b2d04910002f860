"""ADMM-l0 on `nin`, `cifar10` via tfds (needs the dataset prepared or internet), the paper's setup.

  python -m train.train --config=configs/admm/nin_cifar10.py --workdir=runs/nin_cifar10

Paper (Kiaee et al. 2016 Tables 2-4): NIN: 90.71% -> 91.31% at 34.12% sparsity (CIFAR-10, l0), 64.09% at 34.1% (CIFAR-100), 96.97% at 34.17% (SVHN).
The authors' code values: rho = 100, mu on logspace(-4, 0, 20) from the second point, nu = 20, xi = 10.
"""
from configs.admm import base


def get_config(pretrained=None):
    return base.get_base_config("nin", "cifar10", pretrained)

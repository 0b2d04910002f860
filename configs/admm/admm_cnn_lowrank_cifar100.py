"""ADMM-l0 on `admm_cnn_lowrank`, `cifar100` via tfds (needs the dataset prepared or internet), the paper's setup.

  python -m train.train --config=configs/admm/admm_cnn_lowrank_cifar100.py --workdir=runs/admm_cnn_lowrank_cifar100

Paper (Kiaee et al. 2016 Tables 2-4): Low-rank CNN: 80.2% -> 80.14% at about 25% sparsity (CIFAR-10), 60.1% (CIFAR-100), 86.3% (SVHN).
The authors' code values: rho = 100, mu on logspace(-4, 0, 20) from the second point, nu = 20, xi = 10.
"""
from configs.admm import base


def get_config(pretrained=None):
    return base.get_base_config("admm_cnn_lowrank", "cifar100", pretrained)

"""ADMM-l0 on `admm_cnn`, `svhn_cropped` via tfds (needs the dataset prepared or internet), the paper's setup.

  python -m train.train --config=configs/admm/admm_cnn_svhn_cropped.py --workdir=runs/admm_cnn_svhn_cropped

Paper (Kiaee et al. 2016 Tables 2-4): CNN: 80.0% -> 79.9% (CIFAR-10), 60.11% -> 59.82% (CIFAR-100), 85.1% -> 83.3% (SVHN) at about 49.5% sparsity.
The authors' code values: rho = 100, mu on logspace(-4, 0, 20) from the second point, nu = 20, xi = 10.
"""
from configs.admm import base


def get_config(pretrained=None):
    return base.get_base_config("admm_cnn", "svhn_cropped", pretrained)

"""The structured-sparsity paper, Table 2: the resnet `ssr_imagenet18` base on ImageNet, Omega_1 + Omega_2 over a log grid of alpha.

  python -m train.sweep --config=configs/ssr/ssr_imagenet18_resnet_imagenet.py --workdir=runs/ssr_imagenet18_resnet_imagenet

No numbers are reported by the draft (its results section is empty); see configs/ssr/base.py.
"""
from configs.ssr import base


def get_config():
    return base.imagenet("ssr_imagenet18", plain=False)

"""LRSD PreActResNet-56 (bottleneck, slimming code) on CIFAR-10 (Guo et al. 2019, Table 1).

  python -m train.train --config=configs/lrsd/preact_resnet56_cifar10.py --workdir=runs/lrsd_preact_resnet56_cifar10

Paper: compressed to 29.78% without accuracy drop; fine-tuned = baseline + 0.2%
(Table 1 itself is missing from the seed text).
"""
from configs.lrsd import base


def get_config():
    return base.cifar("preact_resnet56", "cifar10")

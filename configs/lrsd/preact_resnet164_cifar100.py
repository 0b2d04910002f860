"""LRSD PreActResNet-164 (bottleneck, slimming code) on CIFAR-100 (Guo et al. 2019, Table 2).

  python -m train.train --config=configs/lrsd/preact_resnet164_cifar100.py --workdir=runs/lrsd_preact_resnet164_cifar100

Paper: baseline 77.35%, 1.73M; LRSD: N_c/N_o 52.83%, pruned 75.70%, fine-tuned 77.76%.
"""
from configs.lrsd import base


def get_config():
    return base.cifar("preact_resnet164", "cifar100")

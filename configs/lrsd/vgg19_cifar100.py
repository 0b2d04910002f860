"""LRSD VGGNet-19 (slimming variant) on CIFAR-100 (Guo et al. 2019, Table 2).

  python -m train.train --config=configs/lrsd/vgg19_cifar100.py --workdir=runs/lrsd_vgg19_cifar100

Paper: baseline 72.74%, 20.08M; LRSD: N_c/N_o 10.54%, pruned 71.18%, fine-tuned 72.80%.
"""
from configs.lrsd import base


def get_config():
    return base.cifar("vgg19_slim", "cifar100")

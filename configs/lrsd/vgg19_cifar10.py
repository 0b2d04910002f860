"""LRSD VGGNet-19 (slimming variant) on CIFAR-10 (Guo et al. 2019, Tables 1 and 5, Fig. 5).

  python -m train.train --config=configs/lrsd/vgg19_cifar10.py --workdir=runs/lrsd_vgg19_cifar10

Paper: baseline 93.77%, 20.04M; LRSD (r = 1, alpha = 0.9): N_c/N_o 5.11%, pruned 93.54%, fine-tuned 93.88%.
"""
from configs.lrsd import base


def get_config():
    return base.cifar("vgg19_slim", "cifar10")

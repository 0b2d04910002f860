"""Baseline: ResNet-18 (torchvision layout) on ImageNet with the same recipe.

  python -m train.train --config=configs/lst/resnet18_imagenet.py --workdir=runs/resnet18_imagenet

torchvision: 11.69M params, 1.82G MACs, 69.76% top-1.
"""
from configs.lst import base


def get_config():
    return base.imagenet("resnet18", lst=False)

"""LST-Net w.r.t. ResNet-18 on Places365-Standard (Li et al. 2020 Table VIII: same recipe as ImageNet).

  python -m train.train --config=configs/lst/lstnet_resnet18_places365.py --workdir=runs/lstnet_resnet18_places365

Paper: 7.71M params / 1.48G FLOPs, top-5 86.35% (10-crop). Dataset: tfds places365_small.
"""
from configs.lst import base


def get_config():
    return base.imagenet("lstnet_resnet18", "places365_small")

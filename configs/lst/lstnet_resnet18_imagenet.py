"""LST-Net w.r.t. ResNet-18 on ImageNet (Li et al. 2020 Table II(a)); dataset tfds imagenet2012 (manual download).

  python -m train.train --config=configs/lst/lstnet_resnet18_imagenet.py --workdir=runs/lstnet_resnet18_imagenet

Paper: ImageNet top-1 in the main Table 3 [UNVERIFIED]; Places365 7.71M / 1.48G, top-5 86.35% (Table VIII).
"""
from configs.lst import base


def get_config():
    return base.imagenet("lstnet_resnet18")

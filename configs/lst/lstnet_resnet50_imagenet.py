"""LST-Net w.r.t. ResNet-50 on ImageNet (Li et al. 2020 Table II(b)); dataset tfds imagenet2012.

  python -m train.train --config=configs/lst/lstnet_resnet50_imagenet.py --workdir=runs/lstnet_resnet50_imagenet

Paper: Places365 23.01M / 4.05G, top-5 87.18% (Table VIII); ImageNet top-1 [UNVERIFIED].
"""
from configs.lst import base


def get_config():
    return base.imagenet("lstnet_resnet50")

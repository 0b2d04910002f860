"""LRSD ResNet-50 on ImageNet, 1x1 convs sparse-only ('LRSD-conv1x1') (Guo et al. 2019, Table 4).

  python -m train.train --config=configs/lrsd/resnet50_conv1x1_imagenet.py --workdir=runs/lrsd_resnet50_conv1x1_imagenet

Paper: 62.43% of the parameters removed at a 0.55% top-5 accuracy cost (abstract).
"""
from configs.lrsd import base


def get_config():
    return base.imagenet(conv1x1=True)

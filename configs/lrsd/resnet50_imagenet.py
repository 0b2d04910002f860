"""LRSD ResNet-50 on ImageNet, 1x1 convs left plain ('LRSD') (Guo et al. 2019, Table 4).

  python -m train.train --config=configs/lrsd/resnet50_imagenet.py --workdir=runs/lrsd_resnet50_imagenet

Paper: Table 4 is missing from the seed text; LRSD removes about half of the parameters with the
lowest error increase of the compared methods.
"""
from configs.lrsd import base


def get_config():
    return base.imagenet(conv1x1=False)

"""LST-Net w.r.t. MobileNetV2 (modified LST-I, ReLU6-ST, Li et al. 2020 Table VII) on ImageNet.

  python -m train.train --config=configs/lst/lstnet_mobilenetv2_imagenet.py --workdir=runs/lstnet_mobilenetv2_imagenet

Paper: ImageNet top-1 in the main Table 3 [UNVERIFIED].
"""
from configs.lst import base


def get_config():
    return base.mobilenetv2()

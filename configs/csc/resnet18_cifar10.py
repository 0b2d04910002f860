"""The plain ResNet-18 baseline on CIFAR-10, trained like SDNet-18.

  python -m train.train --config=configs/csc/resnet18_cifar10.py --workdir=runs/resnet18_cifar10

11,173,962 trainable parameters.
Smoke run: `--config.epochs=1 --config.data.train_examples=512`.
"""
from configs.csc import base


def get_config():
    return base.cifar_config("resnet18_cifar", "cifar10", csc=False)

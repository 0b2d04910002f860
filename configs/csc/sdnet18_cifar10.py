"""SDNet-18 on CIFAR-10.

  python -m train.train --config=configs/csc/sdnet18_cifar10.py --workdir=runs/sdnet18_cifar10

11,173,962 trainable parameters; paper 95.20% (Table D.1), released checkpoint 95.34%.
Smoke run: `--config.epochs=1 --config.data.train_examples=512`.
"""
from configs.csc import base


def get_config():
    return base.cifar_config("sdnet18", "cifar10")

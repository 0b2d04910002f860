"""SDNet-18 on CIFAR-100.

  python -m train.train --config=configs/csc/sdnet18_cifar100.py --workdir=runs/sdnet18_cifar100

11,220,132 trainable parameters (paper 11.3 M); paper 78.31%, released checkpoint 78.45%.
Smoke run: `--config.epochs=1 --config.data.train_examples=512`.
"""
from configs.csc import base


def get_config():
    return base.cifar_config("sdnet18", "cifar100")

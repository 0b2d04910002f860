"""SDNet-18-All (with shortcuts) on CIFAR-10.

  python -m train.train --config=configs/csc/sdnet18_all_cifar10.py --workdir=runs/sdnet18_all_cifar10

11,173,962 trainable parameters; paper 95.18%, released checkpoint 95.02%.
Smoke run: `--config.epochs=1 --config.data.train_examples=512`.
"""
from configs.csc import base


def get_config():
    return base.cifar_config("sdnet18_all", "cifar10")

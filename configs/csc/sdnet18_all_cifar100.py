"""SDNet-18-All (with shortcuts) on CIFAR-100.

  python -m train.train --config=configs/csc/sdnet18_all_cifar100.py --workdir=runs/sdnet18_all_cifar100

11,220,132 trainable parameters; paper 78.16%, released checkpoint 77.89%.
Smoke run: `--config.epochs=1 --config.data.train_examples=512`.
"""
from configs.csc import base


def get_config():
    return base.cifar_config("sdnet18_all", "cifar100")

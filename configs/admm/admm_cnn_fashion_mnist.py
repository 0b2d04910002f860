"""ADMM-l0 on the paper's custom CNN, Fashion-MNIST offline (the project's real-data stand-in).

  python -m train.train --config=configs/admm/admm_cnn_fashion_mnist.py --workdir=runs/admm_cnn_fmnist

Paper (CIFAR-10, same CNN): 80.0% -> 79.9% with about 49.4% fewer parameters.
Changed from the paper for a short run: 3 dense epochs with lr 0.005 and momentum 0.9; the mu grid is moved
so that the hard threshold b = sqrt(2 mu / rho) spans the filter norms of this model (about 0.05 to 0.5
with rho = 100), six values from 0.1 to 10; nu = 2 and xi = 2 keep each mu to at most 6 epochs.
This is a GPU-sized job: on 2 CPU cores one epoch of this CNN takes several minutes.
"""
from configs.admm import base


def get_config(pretrained=None):
    config = base.get_base_config("admm_cnn", "fashion_mnist", pretrained)
    if not pretrained:
        config.epochs = 3
    config.optimizer.learning_rate = 0.005  # lr * rho = 0.5, well inside SGD's stable range on the W-step penalty
    config.optimizer.momentum = 0.9
    config.method.mu_path.update(start=0.1, stop=10.0, num=6, start_index=0, nu=2, xi=2)
    return config

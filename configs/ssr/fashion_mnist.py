"""The scaled-down real sweep of benchmarks/RESULTS.md: a narrow ResNet `ssr_cifar20` on Fashion-MNIST.

  nice -n 5 python -m train.sweep --config=configs/ssr/fashion_mnist.py --workdir=runs/ssr_fashion_mnist

Half-width ResNet-20 layout (8/16/32 kernels, 3x3, no BN), 8,000 training images, 3 epochs + 1 of masked
fine-tuning, Omega_1 + Omega_2 at three alphas, the dense base and one uniformly thinned base per point:
sized to finish in about 20 minutes on a 2-core CPU. For the CIFAR-10 sweeps see ssr_cifar20_*.py.

Differences from the paper-sized configs, forced by the budget: Adam (lr 2e-3, cosine) instead of SGD,
because the BN-free 19-layer base barely moves in a few hundred SGD steps (38% vs 65% test accuracy after
64 steps in a pilot); and tau = 1e-2 instead of 1e-3, because with Adam a dead group keeps jittering at about
the learning rate per entry until the schedule has decayed, which a short run never reaches.
"""
from configs.ssr import base


def get_config():
    config = base.sweep_experiment(
        "ssr_cifar20", "fashion_mnist", epochs=3, batch_size=128, optimizer="adam", learning_rate=2e-3,
        finetune_epochs=1, schedule="cosine", alphas=base.log_grid(-3, -1.5, 3), model_kwargs={"width_multiplier": 0.5},
    )
    config.method.tau = 1e-2
    config.data.train_examples = 8_000
    config.data.augment = False
    config.progress = False
    config.strategy = "default"
    config.sweep.latency_batch_sizes = (1, 64)
    return config

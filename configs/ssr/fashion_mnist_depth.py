"""The second real sweep of benchmarks/RESULTS.md: Omega_1 alone, strong enough to remove residual branches.

  nice -n 5 python -m train.sweep --config=configs/ssr/fashion_mnist_depth.py --workdir=runs/ssr_depth

Same base and data as configs/ssr/fashion_mnist.py (half-width ResNet `ssr_cifar20`, 8,000 training images),
changed after what its run showed: (1) only the kernel-number regularizer Omega_1, so that every kept kernel
keeps its 3x3 box and no layer is deployed as several convs of mixed sizes (which cost time on this CPU);
(2) alphas between the two regimes that run found (5.6e-3 only thinned widths, 3.2e-2 kept 3 of 19 convs):
the point of the structured-sparsity paper's depth selection is a shallower net, which costs less time per multiply-add; (3) as
many fine-tuning epochs as regularized ones (3 + 3), because 1 epoch did not recover; the uniformly thinned
bases train the same 6 epochs from scratch.
"""
from configs.ssr import fashion_mnist


def get_config():
    config = fashion_mnist.get_config()
    config.sweep.regularizers = "kernel"
    config.sweep.alphas = (1.2e-2, 2e-2)
    config.method.finetune_epochs = 3
    return config

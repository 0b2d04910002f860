"""The plain (shortcut-free) twin of configs/ssr/fashion_mnist_seeds.py.

  python -m train.sweep --config=configs/ssr/fashion_mnist_plain_seeds.py --workdir=runs/ssr_plain_seeds

Same data, recipe, seeds and timing; the base is the structured-sparsity paper's plain `ssr_cifar20` at half width. Without
shortcuts no residual `Add` ties channels together, so every width the regularizer learns is deployed:
the exported multiply-adds equal eq. 10's, and the comparison with uniform thinning is of widths alone
(a plain network cannot drop a layer).
"""
from configs.ssr import fashion_mnist_seeds


def get_config():
    config = fashion_mnist_seeds.get_config()
    config.model.kwargs.plain = True
    config.sweep.variants = ("plain",)  # Omega_1 only (as run)
    config.sweep.alphas = (0.01, 0.02, 0.035)  # a pilot at 0.07 kept 1/5.6 of the multiply-adds at 40%
    return config

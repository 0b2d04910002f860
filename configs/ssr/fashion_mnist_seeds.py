"""The third real sweep of benchmarks/RESULTS.md: stronger Omega_1, every run repeated over three seeds.

  python -m train.sweep --config=configs/ssr/fashion_mnist_seeds.py --workdir=runs/ssr_seeds

Same base, data and recipe as configs/ssr/fashion_mnist_depth.py (half-width ResNet `ssr_cifar20`, 8,000
training images, Adam 2e-3 cosine, 3 regularized + 3 masked fine-tuning epochs, baselines 6 epochs), changed
after what its run showed: (1) alphas 0.04 to 0.12, where the learned architecture differs enough from a
uniform thinning (2-3x fewer multiply-adds by eq. 10) for the difference to show above the spread between
runs; (2) every learned architecture also retrained from scratch; (3) three seeds, compared pairwise with
their uniform twins in ``comparison.md``; (4) 7 timing rounds of 20 runs; (5) the complexity-weighted
Omega_3 (eq. 34) beside Omega_1.
"""
from configs.ssr import fashion_mnist_depth


def get_config():
    config = fashion_mnist_depth.get_config()
    config.sweep.alphas = (0.04, 0.07, 0.12)
    config.sweep.retrain = True
    config.sweep.seeds = (0, 1, 2)
    config.sweep.variants = ("plain", "omega3")
    config.sweep.latency_rounds = 7
    config.sweep.latency_repeats = 20
    return config

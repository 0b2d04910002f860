"""CI-sized sweep on 512 real Fashion-MNIST images: two alphas, Omega_3 too, the baselines, in about a minute a point.

  python -m train.sweep --config=configs/ssr/smoke.py --workdir=/tmp/ssr_smoke

Its numbers mean nothing; it proves the whole path (train, threshold, shrink, export, time, plot) works.
In 32 steps plain SGD cannot bring a kernel's norm below the paper's tau = 1e-3 (it jitters at about
lr * alpha around zero), so the smoke run thresholds at 5e-2 with strong alphas.
"""
from configs.ssr import base

STRONG_ALPHA = 0.3  # removes part, not all, of the quarter-width base in 32 steps (tests/training/test_sweep.py)


def get_config():
    config = base.sweep_experiment(
        "ssr_cifar20", "fashion_mnist", epochs=2, batch_size=32, learning_rate=0.05, finetune_epochs=1,
        alphas=(0.03, STRONG_ALPHA), variants=("plain", "omega3"), model_kwargs={"width_multiplier": 0.25},
    )
    config.method.tau = 5e-2
    config.data.train_examples = 512
    config.data.augment = False
    config.checkpoint_every_steps = None
    config.progress = False
    config.strategy = "default"
    config.sweep.latency_batch_sizes = (1,)
    config.sweep.latency_repeats = 2
    config.sweep.latency_rounds = 1
    return config

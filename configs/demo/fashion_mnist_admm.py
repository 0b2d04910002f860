"""The demo (`make demo`): the ADMM paper's CNN on Fashion-MNIST, ADMM-l0, fine-tuning, shrink, export.

  python -m train.train --config=configs/demo/fashion_mnist_admm.py --workdir=runs/demo

A short dense training of `admm_cnn` (seed 002's CNN), ADMM-l0 on whole output kernels (so that pruned
blocks are channels the shrinker can remove), W := F with masks, masked fine-tuning, then the shrunk
model is exported and its measured CPU speedup reported. The kernel norms of this CNN differ by 15x
between layers, so one threshold cannot serve them all: mu is set high enough that every layer meets the
paper's over-pruning guard, which then zeroes the kernels at or below the layer's mean kernel norm. Sized to finish in under 15 minutes on 2 CPU
cores; `--config.data.train_examples=60000 --config.epochs=10` for a real run.
"""
from configs import common


def get_config():
    config = common.experiment(
        "admm_cnn", "fashion_mnist", epochs=2, batch_size=128, learning_rate=0.005, momentum=0.9,
        method="admm",
        method_kwargs=dict(penalty="l0", mu=1000.0, rho=10.0, block="kernel", guard=0.5, admm_epochs=2,
                           update_every=1, finetune_epochs=1),
    )
    config.data.train_examples = 20_000
    config.shrink = True
    config.strategy = "auto"
    return config

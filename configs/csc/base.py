"""Shared settings of SDNet's training (the official yaml files and train.py).

CIFAR-10/100: SGD with Nesterov momentum 0.9, weight decay 5e-4, batch 128, learning rate 0.1 annealed by a
cosine stepped every iteration over 220 epochs down to 1e-6, random crop 32 (pad 4) + horizontal flip,
normalisation mean (0.4914, 0.4822, 0.4465) / std (0.2023, 0.1994, 0.2010), seed 1.
Every CSC layer: lambda 0.1, 2 FISTA iterations, non-negative codes, unit-norm atoms, t = 0.9 / L with L
refreshed by power iteration in every training step (the layer does it) and, before each evaluation and
after the last step, by the "csc" method's hook in train.train (`RefreshCSCStepSize` does it in model.fit).
"""
from configs import common

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2023, 0.1994, 0.2010)


def cifar_config(model, dataset, csc=True, **model_kwargs):
    """The paper's CIFAR training of ``model``; ``csc=False`` for a baseline without CSC layers."""
    if csc:
        model_kwargs = {"lam": 0.1, "n_iter": 2, **model_kwargs}
    config = common.experiment(
        model,
        dataset,
        epochs=220,
        batch_size=128,
        learning_rate=0.1,
        optimizer="sgd",
        momentum=0.9,
        nesterov=True,
        # PyTorch's SGD(weight_decay) decays every parameter, BN included.
        weight_decay=5e-4,
        schedule="cosine",
        model_kwargs=model_kwargs,
        method="csc" if csc else "none",
    )
    config.schedule.final_learning_rate = 1e-6  # the cosine's floor (official CosineAnnealingLR eta_min)
    config.data.normalize_mean = CIFAR_MEAN
    config.data.normalize_std = CIFAR_STD
    config.seed = 1
    return config

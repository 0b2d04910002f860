"""The structured-sparsity paper's alpha sweeps in `configs.common`'s schema, plus ``config.sweep``.

    python -m train.sweep --config=configs/ssr/<name>.py --workdir=runs/<name>

``config.method`` is the ``ssr`` method of ``sparse_keras/training/stages.py`` (its strengths are set per
point by the sweep); ``config.sweep`` holds:

    alphas               the log grid of regularization weights (one trained point each)
    regularizers         "kernel" (Omega_1), "size" (Omega_2, nested half-rings) or "both"
    variants             ("plain",) or ("plain", "omega3"): also the complexity-weighted Omega_3 (eq. 34)
    dense_baseline       also train the dense base architecture
    uniform_baselines    also train, per learned point, the base thinned uniformly to its multiply-adds
    latency_batch_sizes  batch sizes at which every exported model is timed (TensorFlow, CPU here)
    latency_repeats      timed runs per measurement (median)
    latency_rounds       every model is timed this many times, round-robin; the fastest round counts
    retrain              also train every learned architecture again from scratch (the baselines' recipe)
    seeds                repeat every run for each of these seeds (``seed_<s>/``); empty: ``config.seed`` only

The draft gives tau = 1e-3 (Fig. 1) and alpha near 10^-4 (Fig. 4); it reports no learning rate, schedule
or epochs [UNVERIFIED]. The recipes here are the usual ones of each base architecture's family (ResNet-20
on CIFAR: SGD 0.1, /10 at 50% and 75%; ResNet-18 on ImageNet: 90 epochs, /10 every 30) with a lower
starting rate, 0.05, because the structured-sparsity paper's bases have no BatchNorm (sparse_keras/models/ssr_paper.py);
the masked fine-tuning after thresholding is 10% of the training epochs (our choice; the paper does not say).
"""
import ml_collections
import numpy as np

from configs import common

TAU = 1e-3  # the structured-sparsity paper Fig. 1


def log_grid(low_exponent, high_exponent, num):
    """``num`` alphas ``10**e`` for ``e`` evenly spaced in ``[low_exponent, high_exponent]``."""
    return tuple(float(a) for a in np.logspace(low_exponent, high_exponent, num))


def sweep_experiment(model, dataset, *, alphas, regularizers="both", variants=("plain",), finetune_epochs,
                     model_kwargs=None, **recipe):
    """A ``configs.common.experiment`` with method ``ssr`` and a ``config.sweep`` block."""
    config = common.experiment(
        model,
        dataset,
        method="ssr",
        method_kwargs=dict(kernel_strength=0.0, size_strength=0.0, size_scheme="half_ring", tau=TAU,
                           finetune_epochs=finetune_epochs),
        model_kwargs=model_kwargs,
        **recipe,
    )
    config.sweep = ml_collections.ConfigDict(
        {
            "alphas": tuple(alphas),
            "regularizers": regularizers,
            "variants": tuple(variants),
            "dense_baseline": True,
            "uniform_baselines": True,
            "latency_batch_sizes": (1, 64),
            "latency_repeats": 10,
            "latency_rounds": 3,
            "retrain": False,
            "seeds": (),
        }
    )
    return config


def cifar(model, plain=False, **overrides):
    """The CIFAR-10 sweep of a Table 2 CIFAR base: 160 epochs + 16 of masked fine-tuning."""
    recipe = dict(epochs=160, batch_size=128, learning_rate=0.05, schedule="piecewise", boundaries=(80.0, 120.0),
                  decay=0.1, finetune_epochs=16, alphas=log_grid(-5, -3, 9), variants=("plain", "omega3"),
                  model_kwargs={"plain": plain})
    recipe.update(overrides)
    return sweep_experiment(model, "cifar10", **recipe)


def imagenet(model, plain=False, **overrides):
    """The ImageNet sweep of a Table 2 ImageNet base: 90 epochs + 9 of masked fine-tuning."""
    recipe = dict(epochs=90, batch_size=256, learning_rate=0.05, schedule="piecewise", boundaries=(30.0, 60.0),
                  decay=0.1, finetune_epochs=9, alphas=log_grid(-5, -3.5, 7), model_kwargs={"plain": plain})
    recipe.update(overrides)
    return sweep_experiment(model, "imagenet2012", **recipe)

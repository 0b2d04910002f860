"""The LRSD paper's training and fine-tuning settings (Guo et al. 2019, section IV), in the common schema.

CIFAR: SGD, momentum 0.9, weight decay 1e-4, batch 64, 160 epochs, lr 0.1 divided by 10 at 50% and 75%;
lambda (l1 on S, a layer argument: ``model.kwargs.sparse_l1``) 2e-6, rank 1, energy ratio alpha 0.9;
fine-tuning "as Slimming": the same schedule with S masked. ImageNet (ResNet-50): lr 0.1 divided by 10
every 30 epochs, batch 256, 90 epochs, lambda 1e-6; fine-tuning 20 epochs at lr 1e-3 divided by 10 every 10.
Whether the l1 term stays on while fine-tuning is not stated; ``method.keep_l1=False`` (our choice; the paper does not say).

Variants are overrides, e.g. ``--config.model.kwargs.rank=K/10`` or ``=2`` (Table 5; the rank is a string
so that one field holds both forms), ``--config.method.alpha=0.5`` (Table 2), ``--config.model.kwargs.sparse_l1=1e-6``.
"""
import ml_collections

from configs import common


def _method(alpha, finetune_epochs, finetune_learning_rate, finetune_boundaries):
    """``config.method`` of the ``lrsd`` method (``sparse_keras/training/stages.py``); the fine-tuning
    stage's optimizer and schedule have the shape of ``config.optimizer`` / ``config.schedule`` (boundaries in epochs of the fine-tuning stage)."""
    return {
        "alpha": alpha,
        "keep_l1": False,
        "finetune_epochs": finetune_epochs,
        "finetune_optimizer": ml_collections.ConfigDict(
            {"name": "sgd", "learning_rate": finetune_learning_rate, "momentum": 0.9, "nesterov": False,
             "weight_decay": 1e-4}
        ),
        "finetune_schedule": ml_collections.ConfigDict(
            {"name": "piecewise", "boundaries": tuple(finetune_boundaries), "decay": 0.1, "warmup_epochs": 0.0}
        ),
    }


def cifar(model, dataset, rank="1", sparse_l1=2e-6, alpha=0.9, epochs=160):
    """An LRSD CIFAR experiment: train ``model`` (with ``lrsd=True``) from scratch, prune, fine-tune."""
    boundaries = (0.5 * epochs, 0.75 * epochs)
    return common.experiment(
        model,
        dataset,
        epochs=epochs,
        batch_size=64,
        learning_rate=0.1,
        momentum=0.9,
        weight_decay=1e-4,
        schedule="piecewise",
        boundaries=boundaries,
        decay=0.1,
        method="lrsd",
        model_kwargs={"lrsd": True, "rank": rank, "sparse_l1": sparse_l1},
        method_kwargs=_method(alpha, epochs, 0.1, boundaries),
    )


def imagenet(conv1x1=False, rank="1", sparse_l1=1e-6, alpha=0.9):
    """The ResNet-50 ImageNet experiment ("LRSD", or "LRSD-conv1x1" with ``conv1x1=True``)."""
    return common.experiment(
        "resnet50",
        "imagenet2012",
        epochs=90,
        batch_size=256,
        learning_rate=0.1,
        momentum=0.9,
        weight_decay=1e-4,
        schedule="piecewise",
        boundaries=(30, 60),
        decay=0.1,
        method="lrsd",
        model_kwargs={"lrsd": True, "rank": rank, "sparse_l1": sparse_l1, "lrsd_conv1x1": conv1x1},
        method_kwargs=_method(alpha, 20, 1e-3, (10,)),
    )

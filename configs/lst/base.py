"""The training recipes of LST-Net's experiments (Li et al. 2020 section 1), in `configs.common`'s schema.

CIFAR-10/100: SGD momentum 0.9, weight decay 5e-4, batch 128, 160 epochs, lr 0.1 divided by 10 after 32K and
48K iterations (81.92 and 122.88 epochs of 50K images; the official code switches at epochs 82 and 123).
ImageNet / Places365: SGD momentum 0.9, weight decay 1e-4, batch 256, 90 epochs, lr 0.1 divided by 10 every
30 epochs. MobileNetV2: batch 256, lr 0.05, weight decay 5e-4, cosine decay, 150 epochs.

Weight decay: PyTorch's SGD applies it to *every* parameter (BN and the DCT-initialised T_c / T_s
included); whatever form the training binary uses must cover all variables to match.
The LST hyper-parameters (a = 2, k = 3, tau = 1e-4, shared T_s) are the model builders' defaults and are
spelled out in ``model_kwargs`` so a sweep can override them (``--config.model.kwargs.tau=1e-3``).
"""
from configs import common

CIFAR_TRAIN_EXAMPLES = 50_000
LST_KWARGS = {"a": 2, "kernel_size": 3, "tau": 1e-4}


def cifar(model, dataset, lst=True):
    """The CIFAR recipe for ``model`` (an LST-Net, or with ``lst=False`` its ResNet baseline)."""
    boundaries = tuple(common.iterations_to_epochs(it, 128, CIFAR_TRAIN_EXAMPLES) for it in (32_000, 48_000))
    return _sgd(model, dataset, lst, epochs=160, batch_size=128, weight_decay=5e-4, boundaries=boundaries)


def imagenet(model, dataset="imagenet2012", lst=True):
    """The ImageNet / Places365 recipe (90 epochs, lr 0.1 / 10 every 30 epochs, batch 256, wd 1e-4)."""
    return _sgd(model, dataset, lst, epochs=90, batch_size=256, weight_decay=1e-4, boundaries=(30.0, 60.0))


def _sgd(model, dataset, lst, **recipe):
    """SGD with momentum 0.9 from lr 0.1, divided by 10 at each boundary (epochs)."""
    return common.experiment(
        model,
        dataset,
        learning_rate=0.1,
        momentum=0.9,
        schedule="piecewise",
        decay=0.1,
        method="lst" if lst else "none",
        model_kwargs=dict(LST_KWARGS) if lst else {},
        **recipe,
    )


def mobilenetv2(dataset="imagenet2012"):
    """The modified-LST-I MobileNetV2 recipe: batch 256, lr 0.05, wd 5e-4, cosine decay, 150 epochs, tau 1e-8."""
    return common.experiment(
        "lstnet_mobilenetv2",
        dataset,
        epochs=150,
        batch_size=256,
        learning_rate=0.05,
        momentum=0.9,
        weight_decay=5e-4,
        schedule="cosine",
        method="lst",
        model_kwargs={"a": 2, "kernel_size": 3, "tau": 1e-8},
    )

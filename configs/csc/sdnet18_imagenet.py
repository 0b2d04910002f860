"""SDNet-18 on ImageNet (ImageNet stem: CSC 7x7/2, BN, 3x3/2 max-pool), the official schedule.

  python -m train.train --config=configs/csc/sdnet18_imagenet.py --workdir=runs/sdnet18_imagenet

11,689,512 trainable parameters (paper 11.7 M); paper 69.47% top-1 (Table D.1), released checkpoint 69.78%.
SGD momentum 0.9 (no Nesterov), weight decay 1e-4, batch 512, lr 0.1 x0.1 at epochs 30/60/90, 100 epochs.
"""
from configs import common


def get_config():
    config = common.experiment(
        "sdnet18",
        "imagenet2012",
        epochs=100,
        batch_size=512,
        learning_rate=0.1,
        momentum=0.9,
        weight_decay=1e-4,
        schedule="piecewise",
        boundaries=(30, 60, 90),
        decay=0.1,
        model_kwargs={"lam": 0.1, "n_iter": 2, "stem": "imagenet"},
        method="csc",
    )
    config.seed = 1
    return config

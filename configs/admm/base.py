"""Shared settings of the ADMM paper's experiments (Kiaee et al. 2016), in the common schema.

The paper: SGD, learning rate 0.001, batch 128; per-mu epochs min(i*delta, nu*delta) with delta=1, nu=15;
at most xi=10 ADMM iterations per mu. The authors' code: rho=100, mu on logspace(-4, 0, 20) from its second
point, nu=20. The configs use the code's rho and grid (our choice) and say so.

Method ``admm`` with ``config.method.mu_path`` (the paper's continuation, Algorithm 1; see
``sparse_keras/training/stages.py``): ``config.epochs`` dense, then the path. A config's argument starts the
path from a trained model instead (no dense epochs):
``--config=configs/admm/nin_cifar10.py:/path/to/model.keras``.
"""
import ml_collections

from configs import common
from sparse_keras.models import admm_paper


def get_base_config(model, dataset, pretrained=None):
    config = common.experiment(
        model, dataset, epochs=20, batch_size=128, learning_rate=0.001, momentum=0.0,  # plain SGD as the code
        method="admm",
        method_kwargs=dict(
            penalty="l0", block="filter", rho=100.0, guard=0.5,
            epsilon=1e-4,
            stopping="boyd",  # the authors' residual test; "paper" for ||W-F||, ||F-F_prev|| <= epsilon
            finetune=True,  # masked fine-tuning after each mu (Algorithm 1, line 11)
            layers=None,  # None: the paper's selection for its models (sparse_keras.models.admm_paper)
        ),
    )
    config.method.mu_path = ml_collections.ConfigDict({
        "start": 1e-4, "stop": 1.0, "num": 20, "start_index": 1, "delta": 1, "nu": 20, "xi": 10,
        "max_mus": ml_collections.FieldReference(None, field_type=int),  # stop the path early (smoke runs)
    })
    if pretrained:
        # The trained model the path starts from, with the paper's layer selection of the model it is.
        config.model.name, config.model.kwargs = "keras_file", ml_collections.ConfigDict({"path": pretrained})
        config.method.layers = admm_paper.SPARSIFIED.get(model)
        config.epochs = 0
    return config

"""CI-sized runs of every method on real Fashion-MNIST (512 images): the whole binary in seconds.

  python -m train.train --config=configs/smoke/fashion_mnist.py:admm --workdir=/tmp/smoke
  (the part after ':' picks the method: none, ssr, admm, lrsd)

Numbers from these runs mean nothing; they prove the path works end to end (tests/training/test_train_binary.py).
"""
from configs import common

METHOD_KWARGS = {
    "none": {},
    "ssr": dict(kernel_strength=2e-3, size_strength=5e-4, size_scheme="half_ring", tau=1e-3, finetune_epochs=1),
    "admm": dict(penalty="l0", mu=0.5, rho=10.0, block="filter", guard=None, admm_epochs=1, update_every=1,
                 finetune_epochs=1),
    "lrsd": dict(alpha=0.9, keep_l1=False, finetune_epochs=1),
}
MODELS = {"lrsd": ("plain_cnn", {"lrsd": True, "rank": 1, "sparse_l1": 2e-6})}


def get_config(method="admm"):
    if method not in METHOD_KWARGS:
        raise ValueError(f"Unknown smoke method {method!r}; known: {sorted(METHOD_KWARGS)}")
    model, model_kwargs = MODELS.get(method, ("plain_cnn", {}))
    config = common.experiment(model, "fashion_mnist", epochs=1, batch_size=64, learning_rate=0.05,
                               method=method, method_kwargs=METHOD_KWARGS[method], model_kwargs=model_kwargs)
    config.data.train_examples = 512
    config.checkpoint_every_steps = 3
    config.progress = False
    config.strategy = "default"
    return config

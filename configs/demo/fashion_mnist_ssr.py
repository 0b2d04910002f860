"""Demo: learn widths and kernel sizes of a plain CNN on Fashion-MNIST (seed 004's regularizers).

Run (``make demo`` does this):
  python -m train.ssr_demo --config=configs/demo/fashion_mnist_ssr.py --workdir=runs/demo
Override any value: ``--config.epochs=1 --config.kernel_strength=0``.

Omega_1 (kernel number) and Omega_2 (nested half-ring kernel size) are trained together with plain SGD,
then every group with norm <= tau (1e-3, seed 004 Fig. 1) is zeroed and the learned architecture read off.
"""
import ml_collections


def get_config():
    config = ml_collections.ConfigDict()
    config.dataset = "fashion_mnist"
    config.data_dir = ml_collections.FieldReference(None, field_type=str)  # tfds default
    config.model = "plain_cnn"
    config.model_kwargs = ml_collections.ConfigDict()
    config.epochs = 4
    config.batch_size = 128
    config.learning_rate = 0.05
    config.momentum = 0.9
    config.kernel_strength = 2e-3  # alpha of Omega_1 (KernelGroupLasso)
    config.size_strength = 5e-4  # alpha of Omega_2 (NestedHalfRing)
    config.tau = 1e-3
    config.seed = 0
    config.train_examples = ml_collections.FieldReference(None, field_type=int)  # None: the whole split
    return config

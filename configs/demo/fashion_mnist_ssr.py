"""Demo of the structured-sparsity paper's regularizers (`make demo-ssr`): learn a CNN's widths and kernel sizes on Fashion-MNIST.

  python -m train.train --config=configs/demo/fashion_mnist_ssr.py --workdir=runs/demo_ssr \
      [--config.epochs=2 --config.method.kernel_strength=1e-3 ...]

Omega_1 (kernel number, `KernelGroupLasso`) and Omega_2 (nested half-ring kernel size, `NestedHalfRing`) are
trained together on every conv of `plain_cnn` (5 convs, no BN) with plain SGD; then every group with norm
<= tau (1e-3, the structured-sparsity paper Fig. 1) is zeroed and masked, one epoch of masked fine-tuning follows, and the learned
architecture is read off (`architecture.{md,csv,json,png}` in the report), shrunk to a physically smaller
model, exported and timed. The same shared training loop as every other method (checkpoints, resume,
TensorBoard, tf.distribute).
"""
from configs import common


def get_config():
    config = common.experiment(
        "plain_cnn", "fashion_mnist", epochs=4, batch_size=128, learning_rate=0.05, momentum=0.9,
        method="ssr",
        method_kwargs=dict(kernel_strength=2e-3, size_strength=5e-4, size_scheme="half_ring", tau=1e-3,
                           finetune_epochs=1),
    )
    config.data.augment = False
    config.shrink = True
    return config

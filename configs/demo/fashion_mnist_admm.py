"""The demo (`make demo`): the ADMM paper's CNN on Fashion-MNIST, ADMM-l0, fine-tuning, shrink, export.

  python -m train.train --config=configs/demo/fashion_mnist_admm.py --workdir=runs/demo

`admm_cnn` (the CNN of Kiaee et al. 2016, "Alternating Direction Method of Multipliers for Sparse
Convolutional Neural Networks") trains dense for 4 epochs on the whole training split (SGD, cosine decay),
then one ADMM epoch on whole output kernels: W-steps under the penalty rho/2 ||W - F + Gamma/rho||^2, an
F-step that keeps the largest 40% of each layer's kernels (a sparsity target: the kernel norms of this CNN
differ by 15x between layers, so one mu cannot serve them all; the F-step is then the projection of
Zhang et al. 2018), the dual update, W := F with masks, and one fine-tuning epoch, both with their own
small learning rate. The kernels removed are channels, so the shrunk model is 6x smaller in multiply-adds;
the fine-tuning trains it in place of the masked model (``finetune_shrunk``: the masked fine-tuning's
result, each step 4x shorter on a CPU, weights written back), and it is exported and timed on this CPU.
The schedule was chosen on a GPU run of twelve candidates (benchmarks/RESULTS.md, "Choosing the demo's
schedule"): 3 dense epochs gave 87.57% dense accuracy, 4 give 90.34%. It trains 5 epochs of 60,000 images
on the dense model and one on the shrunk one: 11 min 33 s from a fresh clone on a 2-core CPU with nothing
else running (2026-12-01; longer in this VM's slow hours).
"""
import ml_collections

from configs import common


def get_config():
    config = common.experiment(
        "admm_cnn", "fashion_mnist", epochs=4, batch_size=128, learning_rate=0.1, momentum=0.9,
        schedule="cosine", method="admm",
        method_kwargs=dict(penalty="l0", sparsity=0.6, rho=10.0, block="kernel", guard=None, admm_epochs=1,
                           update_every=1, finetune_epochs=1, finetune_shrunk=True),
    )
    config.schedule.final_learning_rate = 0.005
    # The ADMM and fine-tuning epochs: a fresh SGD each, cosine from 0.01 (lr * rho = 0.1, far inside the
    # W-step's stability bound 2 (1 + momentum)).
    config.method.sparsify_optimizer = ml_collections.ConfigDict(
        {"name": "sgd", "learning_rate": 0.01, "momentum": 0.9, "nesterov": False, "weight_decay": 0.0})
    config.method.sparsify_schedule = ml_collections.ConfigDict(
        {"name": "cosine", "boundaries": (), "decay": 0.1, "warmup_epochs": 0.0, "final_learning_rate": 0.0})
    config.shrink = True
    # Timed on TensorFlow's runtime and on TFLite (XNNPACK), the CPU runtime the exported model ships to.
    config.latency_runtimes = ("tf", "tflite")
    config.strategy = "auto"
    return config

"""Plain (shortcut-free, BN-free) CNNs: a stack of convs with max-pools, global pooling and a classifier.

Without BatchNorm a kernel's scale matters to the output, so a group lasso on kernel norms trades
accuracy against size as the structured-sparsity paper intends; behind a BN the loss is blind to a kernel's scale and the
lasso would shrink every kernel alike. That is why the demo's default network has no BN.
"""

import keras
from keras import layers

from sparse_keras.models import registry
from sparse_keras.sparsity import convert


def plain_cnn(
    num_classes=10,
    input_shape=(28, 28, 1),
    widths=(16, 16, 32, 32, 64),
    kernel_sizes=(5, 3, 3, 3, 3),
    pool_after=(1, 3),
    classifier_activation=None,
    name="plain_cnn",
):
    """``len(widths)`` 'same' convs with ReLU and bias, 2x2 max-pools after the layers in ``pool_after``
    (0-based), global average pooling and a Dense classifier producing logits."""
    if len(widths) != len(kernel_sizes) or not widths:
        raise ValueError(f"widths and kernel_sizes must be equally long and non-empty; got {widths} and {kernel_sizes}")
    bad = [p for p in pool_after if not 0 <= p < len(widths)]
    if bad:
        raise ValueError(f"pool_after holds layer indices outside 0..{len(widths) - 1}: {bad}")
    inputs = keras.Input(input_shape, name="image")
    x = inputs
    for index, (width, size) in enumerate(zip(widths, kernel_sizes)):
        x = layers.Conv2D(
            width, size, padding="same", activation="relu", kernel_initializer="he_normal", name=f"conv{index + 1}"
        )(x)
        if index in pool_after:
            x = layers.MaxPooling2D(2, name=f"pool{index + 1}")(x)
    x = layers.GlobalAveragePooling2D(name="global_pool")(x)
    outputs = layers.Dense(num_classes, activation=classifier_activation, name="classifier")(x)
    return keras.Model(inputs, outputs, name=name)


@registry.register("plain_cnn")
def _plain_cnn(num_classes, input_shape, lrsd=False, rank=1, sparse_l1=2e-6, **kwargs):
    model = plain_cnn(num_classes, input_shape, **kwargs)
    if lrsd:  # the LRSD version (Guo et al. 2019), e.g. for quick runs of the lrsd method
        model = convert.to_lrsd(model, rank=rank, sparse_l1=sparse_l1)
    return model

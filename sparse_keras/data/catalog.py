"""The datasets :func:`sparse_keras.data.load` knows, described statically so models can be built first.

A model needs its input shape and class count before any data is prepared (preparing CIFAR-10 means a
download); the numbers below are tfds' published split sizes, so :func:`dataset_info` never touches disk.
"""

import dataclasses
from typing import NamedTuple

# Train-time augmentations, by name; "crop" is zero-pad by `augment.PAD` then a random crop back.
AUGMENTATIONS = ("none", "crop", "crop_flip")


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    input_shape: tuple
    num_classes: int
    num_train_examples: int
    num_test_examples: int
    # The ResNet CIFAR recipe (He et al. 2016, sec. 4.2) for the 32x32 colour sets; no flip for SVHN,
    # whose digits are not mirror-symmetric; nothing for the 28x28 grey sets, as in most papers using them.
    train_augmentation: str


CATALOG = {
    "mnist": DatasetSpec((28, 28, 1), 10, 60_000, 10_000, "none"),
    "fashion_mnist": DatasetSpec((28, 28, 1), 10, 60_000, 10_000, "none"),
    "cifar10": DatasetSpec((32, 32, 3), 10, 50_000, 10_000, "crop_flip"),
    "cifar100": DatasetSpec((32, 32, 3), 100, 50_000, 10_000, "crop_flip"),
    "svhn_cropped": DatasetSpec((32, 32, 3), 10, 73_257, 26_032, "crop"),
}


class DatasetSummary(NamedTuple):
    input_shape: tuple
    num_classes: int
    num_train_examples: int


def spec(name):
    """The :class:`DatasetSpec` of ``name``; ``ValueError`` listing the known names otherwise."""
    if name not in CATALOG:
        raise ValueError(f"Unknown dataset name={name!r}; known datasets: {sorted(CATALOG)}")
    return CATALOG[name]


def dataset_info(name):
    """``(input_shape, num_classes, num_train_examples)`` of a known dataset, without preparing any data."""
    entry = spec(name)
    return DatasetSummary(entry.input_shape, entry.num_classes, entry.num_train_examples)

"""The datasets :func:`sparse_keras.data.load` knows, described statically so models can be built first.

A model needs its input shape and class count before any data is prepared (preparing CIFAR-10 means a
download); the numbers below are tfds' published split sizes, so :func:`dataset_info` never touches disk.
"""

import dataclasses
from typing import NamedTuple

# Train-time augmentations, by name. For fixed-size sets "crop" is zero-pad by `augment.PAD` then a random
# crop back; for `per_example_crop` sets it is the Inception random-resized crop and "none" is the central
# evaluation crop (see `imagenet_preprocessing`).
AUGMENTATIONS = ("none", "crop", "crop_flip")


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    input_shape: tuple
    num_classes: int
    num_train_examples: int
    num_eval_examples: int  # in `eval_split`
    # The ResNet CIFAR recipe (He et al. 2016, sec. 4.2) for the 32x32 colour sets; no flip for SVHN,
    # whose digits are not mirror-symmetric; nothing for the 28x28 grey sets, as in most papers using them;
    # random-resized crop + flip for the ImageNet-style sets.
    train_augmentation: str
    # The labelled split models are evaluated on: ImageNet's and Places365's "test" splits have no labels,
    # so papers report their "validation" split.
    eval_split: str = "test"
    # Images of varying sizes, cropped one by one to `input_shape` before batching (Inception crop to
    # train, resize + central crop to evaluate) instead of being batched as stored and augmented per batch.
    per_example_crop: bool = False
    # What to put in tfds' manual_dir (`<data_dir>/downloads/manual`) before the dataset can be prepared;
    # None when tfds downloads it by itself.
    manual_download: str | None = None


CATALOG = {
    "mnist": DatasetSpec((28, 28, 1), 10, 60_000, 10_000, "none"),
    "fashion_mnist": DatasetSpec((28, 28, 1), 10, 60_000, 10_000, "none"),
    "cifar10": DatasetSpec((32, 32, 3), 10, 50_000, 10_000, "crop_flip"),
    "cifar100": DatasetSpec((32, 32, 3), 100, 50_000, 10_000, "crop_flip"),
    "svhn_cropped": DatasetSpec((32, 32, 3), 10, 73_257, 26_032, "crop"),
    "imagenet2012": DatasetSpec(
        (224, 224, 3), 1000, 1_281_167, 50_000, "crop_flip", eval_split="validation", per_example_crop=True,
        manual_download="ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar, from "
        "https://image-net.org/download-images (free registration, about 150 GB)",
    ),
    # The 256x256 version of Places365-Standard; tfds downloads it (about 30 GB) on first use.
    "places365_small": DatasetSpec(
        (224, 224, 3), 365, 1_803_460, 36_500, "crop_flip", eval_split="validation", per_example_crop=True
    ),
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

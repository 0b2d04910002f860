"""Batched ``tf.data`` input pipelines over tfds: prepare once, then read, scale, augment, batch, prefetch.

Order of the stages, and why:

1. tfds reads the prepared TFRecords (files shuffled only for training);
2. ``cache`` keeps the decoded uint8 images in memory, so PNG decoding happens once, not every epoch;
3. training only: shuffle;
4. batch, then (training only) augment whole batches, each example with its own random crop and flip;
5. scale to [0, 1] in ``image_dtype`` (after augmenting, so that uint8 is what gets padded and copied);
6. prefetch.

Datasets with ``per_example_crop`` in the catalogue (ImageNet, Places365) differ in steps 1, 2 and 4: images
stay encoded (JPEG crops are decoded window-only), ``cache`` is off by default (ImageNet's JPEGs alone are
~150 GB), and each example is cropped to the input size before batching (:mod:`imagenet_preprocessing`).

Evaluation never shuffles or augments, so two passes over an evaluation dataset see the same examples in
the same order.
"""

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from sparse_keras.data import augment as augment_lib
from sparse_keras.data import catalog
from sparse_keras.data import fashion_mnist
from sparse_keras.data import imagenet_preprocessing


class DatasetNotFoundError(FileNotFoundError):
    """A dataset is neither prepared in tfds' data_dir nor preparable from here."""


def dataset_builder(name, data_dir=None, fashion_mnist_dir=None):
    """The tfds builder behind ``name`` (not prepared yet), reading and writing under ``data_dir``.

    ``fashion_mnist`` is :class:`~sparse_keras.data.fashion_mnist.FashionMnistOffline` when its IDX files
    are found or it was prepared before, else tfds' online builder. An explicitly chosen source directory
    (``fashion_mnist_dir`` or the environment variable) that lacks the files is an error, not a fallback.
    """
    catalog.spec(name)
    if name != "fashion_mnist":
        return tfds.builder(name, data_dir=data_dir)
    offline = fashion_mnist.FashionMnistOffline(data_dir=data_dir, source_dir=fashion_mnist_dir)
    if offline.is_prepared() or not fashion_mnist.missing_source_files(offline.source_dir):
        return offline
    _, origin = fashion_mnist.source_dir_and_origin(fashion_mnist_dir)
    if origin != fashion_mnist.DEBIAN_DEFAULT_ORIGIN:
        fashion_mnist.check_source_files(fashion_mnist_dir)  # raises, naming the directory
    return tfds.builder("fashion_mnist", data_dir=data_dir)


def load(
    name,
    split,
    batch_size,
    *,
    train,
    data_dir=None,
    shuffle_buffer=10_000,
    seed=None,
    drop_remainder=None,
    augment=None,
    image_dtype="float32",
    cache=None,
    fashion_mnist_dir=None,
):
    """A batched, prefetched ``tf.data.Dataset`` of ``(images, labels)``; prepares the data on first use.

    Args:
      name: a key of :data:`sparse_keras.data.catalog.CATALOG`.
      split: a tfds split string, e.g. ``"train"``, ``"test"`` or ``"train[:90%]"``; the dataset's labelled
        evaluation split is ``catalog.spec(name).eval_split`` (``"validation"`` for ImageNet, Places365).
      batch_size: examples per batch.
      train: shuffle and augment (training) or keep a fixed order (evaluation).
      data_dir: tfds data directory; ``None`` is tfds' default (``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``).
      shuffle_buffer: examples in the shuffle buffer (training only).
      seed: makes file order, shuffling and augmentation reproducible (training only).
      drop_remainder: drop a last partial batch; ``None`` means ``train``.
      augment: one of ``"none"``, ``"crop"``, ``"crop_flip"`` (training only); ``None`` is the dataset's
        default in the catalogue. For ``per_example_crop`` datasets "crop" is the Inception random-resized
        crop and "none" the central evaluation crop.
      image_dtype: floating dtype of the images, which are NHWC in [0, 1].
      cache: keep the stored images (decoded uint8; encoded for ``per_example_crop`` datasets) in memory
        after the first pass; ``None`` means yes except for ``per_example_crop`` datasets.
      fashion_mnist_dir: where the Fashion-MNIST IDX files are (see :mod:`sparse_keras.data.fashion_mnist`).

    Returns:
      A dataset of ``(images, labels)``: images ``(batch, H, W, C)`` in ``image_dtype``, labels int64.
    """
    return epoch_loader(name, split, batch_size, train=train, data_dir=data_dir, shuffle_buffer=shuffle_buffer,
                        drop_remainder=drop_remainder, augment=augment, image_dtype=image_dtype, cache=cache,
                        fashion_mnist_dir=fashion_mnist_dir, read_seed=seed)(seed)


def epoch_loader(
    name,
    split,
    batch_size,
    *,
    train,
    data_dir=None,
    shuffle_buffer=10_000,
    drop_remainder=None,
    augment=None,
    image_dtype="float32",
    cache=None,
    fashion_mnist_dir=None,
    read_seed=None,
):
    """A function ``seed -> dataset``: one pass each, as :func:`load` with that seed would give it, over
    stored examples read and decoded once.

    A training run wants a fresh pass per epoch, each with its own seed (so that a resumed run replays its
    epoch's batches); calling :func:`load` per epoch would read and decode the whole split again each time
    (about 10 s of CPU per Fashion-MNIST epoch on a 2-core machine, taken from the training steps). Here the
    cached stored examples are shared by every pass. Their file order is that of ``read_seed``; a
    single-file split (Fashion-MNIST, CIFAR) has one order whatever the seed, so its passes equal
    :func:`load`'s batch for batch. Where ``cache`` is off (ImageNet, Places365) each pass reads the files
    again, in its own seed's order. Arguments as in :func:`load`.
    """
    _check_positive_int("batch_size", batch_size)
    _check_positive_int("shuffle_buffer", shuffle_buffer)
    image_dtype = _check_floating_dtype(image_dtype)
    entry = catalog.spec(name)
    augmentation = entry.train_augmentation if augment is None else augment
    augment_lib.check_augmentation(augmentation)

    builder = dataset_builder(name, data_dir=data_dir, fashion_mnist_dir=fashion_mnist_dir)
    prepare(builder, name)
    if cache is None:
        cache = not entry.per_example_crop  # ImageNet's JPEGs alone would fill ~150 GB of memory
    stored = _read_examples(builder, entry, split, train=train, seed=read_seed).cache() if cache else None

    def one_pass(seed=None):
        dataset = stored if cache else _read_examples(builder, entry, split, train=train, seed=seed)
        if train:
            dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        if entry.per_example_crop:
            dataset = imagenet_preprocessing.crop_examples(
                dataset,
                entry.input_shape[0],
                train=train and augmentation != "none",
                flip=augmentation == "crop_flip",
                seed=seed,
            )
        dataset = dataset.batch(batch_size, drop_remainder=train if drop_remainder is None else drop_remainder)
        if train and not entry.per_example_crop:
            dataset = augment_lib.augment_batches(dataset, augmentation, seed=seed)
        dataset = dataset.map(
            lambda images, labels: (scale_image(images, image_dtype), labels), num_parallel_calls=tf.data.AUTOTUNE
        )
        return dataset.prefetch(tf.data.AUTOTUNE).with_options(_FIXED_PARALLELISM)

    return one_pass


def _fixed_parallelism():
    # tf.data's autotuning runs a model thread per iterator that sleeps between optimisation rounds, and an
    # iterator's destructor waits for that sleep to end: 3 s after a test-set pass and up to 27 s between two
    # epochs of the demo (2 cores, TensorFlow 2.21; the machine idle meanwhile). Measured without it: the same
    # batches, and the first pass over Fashion-MNIST's training split (PNG decoding) in 4.0 s instead of 10.4 s.
    options = tf.data.Options()
    options.autotune.enabled = False
    return options


_FIXED_PARALLELISM = _fixed_parallelism()


def _read_examples(builder, entry, split, *, train, seed):
    """``(image, label)`` pairs as stored; images still encoded for ``per_example_crop`` datasets."""
    read_config = tfds.ReadConfig(shuffle_seed=seed)
    if not entry.per_example_crop:
        return builder.as_dataset(split=split, as_supervised=True, shuffle_files=train, read_config=read_config)
    # Feature dicts, not `as_supervised`: Places365's supervised keys are (image, label, filename).
    examples = builder.as_dataset(
        split=split,
        shuffle_files=train,
        read_config=read_config,
        decoders={"image": tfds.decode.SkipDecoding()},
    )
    return examples.map(lambda example: (example["image"], example["label"]))


def prepare(builder, name):
    """Prepares ``builder`` unless it is; :class:`DatasetNotFoundError` saying where and how, if that fails.

    tfds signals an empty manual_dir with ``AssertionError`` and a failed download with an ``OSError``.
    """
    if builder.is_prepared():
        return
    try:
        builder.download_and_prepare()
    except fashion_mnist.MissingSourceFilesError:
        raise  # already names the directory and how to fill it
    except (AssertionError, OSError) as error:
        raise DatasetNotFoundError(_how_to_get(builder, name, error)) from error


def _how_to_get(builder, name, error):
    looked = f"Dataset name={name!r} is not prepared in {str(builder.data_dir)!r}"
    manual_download = catalog.spec(name).manual_download
    if manual_download is not None:
        manual_dir = builder.data_dir_root / "downloads" / "manual"
        return (
            f"{looked}, and tfds cannot download it: put {manual_download} into tfds' manual_dir "
            f"{str(manual_dir)!r} and load again (tfds then prepares it, which takes hours), or pass the "
            "data_dir where it is already prepared."
        )
    return (
        f"{looked}, and preparing it failed ({error}). Prepare it once where the internet is reachable "
        f"(`tfds build {name} --data_dir=DIR`) and copy DIR here, or pass the data_dir where it is prepared."
    )


def scale_image(image, dtype="float32"):
    """uint8 pixels ``0..255`` to ``dtype`` values in ``[0, 1]``."""
    return tf.cast(image, dtype) / tf.constant(255.0, dtype)


def _check_positive_int(argument, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{argument} must be a positive integer, got {argument}={value!r}")


def _check_floating_dtype(image_dtype):
    try:
        dtype = tf.as_dtype(image_dtype)
    except TypeError as error:
        raise ValueError(f"image_dtype must be a floating dtype, got image_dtype={image_dtype!r}") from error
    if not dtype.is_floating:
        raise ValueError(f"image_dtype must be a floating dtype, got image_dtype={image_dtype!r}")
    return dtype

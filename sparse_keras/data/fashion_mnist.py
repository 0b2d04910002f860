"""Fashion-MNIST as a tfds builder that reads local IDX files instead of downloading them.

tfds' own ``fashion_mnist`` builder fetches the four gzipped IDX files from a URL, which fails on machines
without internet. Debian's ``dataset-fashion-mnist`` package ships the very same files, so
:class:`FashionMnistOffline` subclasses tfds' ``FashionMNIST`` and swaps only ``_split_generators``: the
features, splits, version and ``_generate_examples`` stay tfds', so the prepared TFRecords hold the same
examples as ``tfds.load("fashion_mnist")`` would, under the registered name ``fashion_mnist_offline``.

Where the files are looked for, first match wins: the ``source_dir`` argument, the environment variable
``SPARSE_KERAS_FASHION_MNIST_DIR``, then Debian's ``/usr/share/datasets/fashion-mnist``. The files are
only read while preparing; later loads read the prepared TFRecords under tfds' ``data_dir``.
"""

import os
import pathlib
import tempfile

import tensorflow_datasets as tfds
from tensorflow_datasets.image_classification import mnist

SOURCE_DIR_ENV_VAR = "SPARSE_KERAS_FASHION_MNIST_DIR"
DEBIAN_SOURCE_DIR = "/usr/share/datasets/fashion-mnist"
DEBIAN_DEFAULT_ORIGIN = "the default of the Debian package dataset-fashion-mnist"

# The keys are the ones tfds' MNIST `_split_generators` uses for the same four files.
SOURCE_FILES = {
    "train_data": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_data": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
NUM_TRAIN_EXAMPLES = 60_000
NUM_TEST_EXAMPLES = 10_000


class MissingSourceFilesError(FileNotFoundError):
    """The Fashion-MNIST IDX files are not where this package was told to look."""


def source_dir_and_origin(source_dir=None):
    """Returns ``(directory, why that directory)``: argument, else environment variable, else Debian's path."""
    if source_dir is not None:
        return pathlib.Path(source_dir), "the source_dir argument"
    from_env = os.environ.get(SOURCE_DIR_ENV_VAR)
    if from_env:
        return pathlib.Path(from_env), f"the environment variable {SOURCE_DIR_ENV_VAR}"
    return pathlib.Path(DEBIAN_SOURCE_DIR), DEBIAN_DEFAULT_ORIGIN


def missing_source_files(source_dir):
    """Names of the four IDX files that are not in ``source_dir`` (empty when all are there)."""
    source_dir = pathlib.Path(source_dir)
    return [name for name in SOURCE_FILES.values() if not (source_dir / name).is_file()]


def check_source_files(source_dir=None):
    """Returns the resolved source directory, or raises :class:`MissingSourceFilesError` saying how to fix it."""
    directory, origin = source_dir_and_origin(source_dir)
    _require_source_files(directory, origin)
    return directory


def _require_source_files(directory, origin):
    missing = missing_source_files(directory)
    if missing:
        raise MissingSourceFilesError(
            f"Fashion-MNIST files not found in {str(directory)!r} (taken from {origin}); missing: "
            f"{', '.join(missing)}. To get them: `apt-get install dataset-fashion-mnist` (installs them in "
            f"{DEBIAN_SOURCE_DIR}), or set {SOURCE_DIR_ENV_VAR} (or pass source_dir) to a directory holding "
            f"{', '.join(SOURCE_FILES.values())}, or use tfds' online builder `tfds.load('fashion_mnist')`."
        )


class FashionMnistOffline(mnist.FashionMNIST):
    """tfds' Fashion-MNIST built from the local IDX files; ``source_dir`` as in :func:`source_dir_and_origin`."""

    name = "fashion_mnist_offline"

    def __init__(self, *, source_dir=None, **kwargs):
        # Resolved now so that a builder prepared under one environment keeps pointing at the same files.
        self.source_dir, self._source_origin = source_dir_and_origin(source_dir)
        super().__init__(**kwargs)
        # tfds re-creates builders from `_original_state` when pickling (e.g. for Beam or multiprocessing).
        self._original_state["source_dir"] = os.fspath(self.source_dir)

    def download_and_prepare(self, *, download_dir=None, download_config=None, **kwargs):
        """As tfds', but the decompressed copies go to a scratch folder unless a download place is given.

        ``dl_manager.extract`` writes each ``.gz`` decompressed under ``download_dir``; for local files that
        is 53 MB of copies nobody reads again once the TFRecords exist.
        """
        if download_dir is not None or download_config is not None:
            return super().download_and_prepare(
                download_dir=download_dir, download_config=download_config, **kwargs
            )
        with tempfile.TemporaryDirectory(prefix="fashion_mnist_offline_") as scratch:
            return super().download_and_prepare(download_dir=scratch, **kwargs)

    def _split_generators(self, dl_manager):
        _require_source_files(self.source_dir, self._source_origin)
        # tfds' `_generate_examples` reads raw IDX bytes, so the gzip layer is removed by tfds' own extractor.
        extracted = dl_manager.extract({key: self.source_dir / name for key, name in SOURCE_FILES.items()})
        return [
            tfds.core.SplitGenerator(
                name=tfds.Split.TRAIN,
                gen_kwargs=dict(
                    num_examples=NUM_TRAIN_EXAMPLES,
                    data_path=extracted["train_data"],
                    label_path=extracted["train_labels"],
                ),
            ),
            tfds.core.SplitGenerator(
                name=tfds.Split.TEST,
                gen_kwargs=dict(
                    num_examples=NUM_TEST_EXAMPLES,
                    data_path=extracted["test_data"],
                    label_path=extracted["test_labels"],
                ),
            ),
        ]

"""Tests for sparse_keras.data: the offline Fashion-MNIST builder, the catalogue and the tf.data pipeline.

Pipeline tests run on ``tfds.testing.mock_data`` (random examples, no preparation, no internet); the tests
marked ``slow`` prepare the real Fashion-MNIST from the Debian files into a temporary data_dir once.
"""

import ast
import pathlib

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
tfds = pytest.importorskip("tensorflow_datasets")

from sparse_keras import data  # noqa: E402
from sparse_keras.data import augment as augment_lib  # noqa: E402
from sparse_keras.data import fashion_mnist  # noqa: E402
from sparse_keras.data import pipeline  # noqa: E402

pytestmark = pytest.mark.tf_only

needs_fashion_mnist_files = pytest.mark.skipif(
    bool(fashion_mnist.missing_source_files(fashion_mnist.DEBIAN_SOURCE_DIR)),
    reason=f"no Fashion-MNIST files in {fashion_mnist.DEBIAN_SOURCE_DIR}; apt-get install dataset-fashion-mnist",
)


@pytest.fixture
def mocked_tfds():
    """Every tfds builder yields 20 deterministic random examples per split, without preparing anything."""
    with tfds.testing.mock_data(num_examples=20):
        yield


def _as_numpy(dataset):
    images, labels = zip(*[(x.numpy(), y.numpy()) for x, y in dataset])
    return np.concatenate(images), np.concatenate(labels)


# -- catalogue -------------------------------------------------------------------------------------------
def test_dataset_info_is_static():
    assert data.dataset_info("fashion_mnist") == ((28, 28, 1), 10, 60_000)
    assert data.dataset_info("cifar100") == ((32, 32, 3), 100, 50_000)
    input_shape, num_classes, num_train_examples = data.dataset_info("svhn_cropped")
    assert (input_shape, num_classes, num_train_examples) == ((32, 32, 3), 10, 73_257)


def test_unknown_name_lists_known_datasets():
    for call in (lambda: data.dataset_info("imagenet"), lambda: data.load("imagenet", "test", 8, train=False)):
        with pytest.raises(ValueError, match="imagenet") as error:
            call()
        assert all(name in str(error.value) for name in ("cifar10", "cifar100", "fashion_mnist", "mnist"))


@pytest.mark.parametrize(
    "kwargs, bad",
    [
        (dict(batch_size=0), "batch_size=0"),
        (dict(shuffle_buffer=-1), "shuffle_buffer=-1"),
        (dict(image_dtype="int32"), "image_dtype='int32'"),
        (dict(augment="rotate"), "augment='rotate'"),
    ],
)
def test_bad_arguments_are_named(kwargs, bad):
    arguments = dict(batch_size=4, train=True) | kwargs
    with pytest.raises(ValueError, match=bad):
        data.load("cifar10", "train", **arguments)


class _ImportsRunAtImportTime(ast.NodeVisitor):
    """Collects the modules a module imports when it is imported: imports inside functions run later."""

    def __init__(self, module_name, is_package):
        parts = module_name.split(".")
        self.package = parts if is_package else parts[:-1]
        self.modules = {".".join(parts[:i]) for i in range(1, len(parts))}  # parent packages run first

    def visit_FunctionDef(self, node):
        pass

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Import(self, node):
        self.modules |= {alias.name for alias in node.names}

    def visit_ImportFrom(self, node):
        base = node.module
        if node.level:  # relative: `from . import x` is level 1, relative to this module's package
            package = self.package[: len(self.package) - node.level + 1]
            base = ".".join(package + ([node.module] if node.module else []))
        # `from package import name` imports `package.name` when `name` is a submodule.
        self.modules |= {base} | {f"{base}.{alias.name}" for alias in node.names}


def _module_level_imports(module_name):
    """Modules of ``sparse_keras`` that importing ``module_name`` runs; empty for names that are not modules."""
    root = pathlib.Path(data.__file__).parents[2]
    for path, is_package in ((root / (module_name.replace(".", "/") + ".py"), False),
                             (root / module_name.replace(".", "/") / "__init__.py", True)):
        if path.exists():
            visitor = _ImportsRunAtImportTime(module_name, is_package)
            visitor.visit(ast.parse(path.read_text()))
            return {name for name in visitor.modules if name.split(".")[0] == "sparse_keras"}
    return set()


def test_core_package_does_not_import_data():
    # `sparse_keras` must stay importable without TensorFlow, so it may not pull in this subpackage.
    seen, pending = set(), ["sparse_keras"]
    while pending:
        module = pending.pop()
        if module not in seen:
            seen.add(module)
            pending.extend(_module_level_imports(module))
    assert not any(name == "sparse_keras.data" or name.startswith("sparse_keras.data.") for name in seen)
    assert "sparse_keras.regularizers" in seen  # the walk does follow the core's imports


# -- the offline Fashion-MNIST builder ------------------------------------------------------------------
def test_offline_builder_is_tfds_fashion_mnist_under_its_own_name(tmp_path):
    builder = tfds.builder("fashion_mnist_offline", data_dir=tmp_path)
    reference = tfds.builder("fashion_mnist", data_dir=tmp_path)
    assert isinstance(builder, data.FashionMnistOffline)
    assert builder.version == reference.version
    assert repr(builder.info.features) == repr(reference.info.features)


def test_missing_source_dir_error_names_the_path(tmp_path):
    nowhere = tmp_path / "no-fashion-mnist-here"
    builder = data.FashionMnistOffline(data_dir=tmp_path / "tfds", source_dir=nowhere)
    with pytest.raises(data.MissingSourceFilesError) as error:
        builder.download_and_prepare()
    message = str(error.value)
    assert str(nowhere) in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert fashion_mnist.SOURCE_DIR_ENV_VAR in message
    assert "tfds.load('fashion_mnist')" in message


def test_env_var_chooses_source_dir_and_is_not_silently_ignored(tmp_path, monkeypatch):
    nowhere = tmp_path / "env-chosen"
    monkeypatch.setenv(fashion_mnist.SOURCE_DIR_ENV_VAR, str(nowhere))
    assert data.FashionMnistOffline(data_dir=tmp_path).source_dir == nowhere
    with pytest.raises(data.MissingSourceFilesError, match=fashion_mnist.SOURCE_DIR_ENV_VAR) as error:
        data.load("fashion_mnist", "test", 8, train=False, data_dir=tmp_path)
    assert str(nowhere) in str(error.value)


def test_fashion_mnist_without_debian_files_falls_back_to_tfds_online(tmp_path, monkeypatch):
    monkeypatch.delenv(fashion_mnist.SOURCE_DIR_ENV_VAR, raising=False)
    monkeypatch.setattr(fashion_mnist, "DEBIAN_SOURCE_DIR", str(tmp_path / "not-installed"))
    builder = data.dataset_builder("fashion_mnist", data_dir=tmp_path)
    assert builder.name == "fashion_mnist"
    assert not isinstance(builder, data.FashionMnistOffline)


@needs_fashion_mnist_files
def test_fashion_mnist_uses_offline_builder_when_files_exist(tmp_path, monkeypatch):
    monkeypatch.delenv(fashion_mnist.SOURCE_DIR_ENV_VAR, raising=False)
    assert isinstance(data.dataset_builder("fashion_mnist", data_dir=tmp_path), data.FashionMnistOffline)


@pytest.fixture(scope="module")
def prepared_data_dir(tmp_path_factory):
    """A tfds data_dir holding the real Fashion-MNIST, prepared once from the Debian files."""
    data_dir = tmp_path_factory.mktemp("tfds")
    builder = data.FashionMnistOffline(data_dir=data_dir, source_dir=fashion_mnist.DEBIAN_SOURCE_DIR)
    builder.download_and_prepare()
    return data_dir


@pytest.mark.slow
@needs_fashion_mnist_files
def test_offline_builder_prepares_all_real_examples(prepared_data_dir):
    builder = data.FashionMnistOffline(data_dir=prepared_data_dir)
    assert builder.is_prepared()
    assert not (prepared_data_dir / "downloads").exists()  # the decompressed copies went to a scratch folder
    for split, expected in (("train", 60_000), ("test", 10_000)):
        assert builder.info.splits[split].num_examples == expected
        # Counting every stored record without decoding 60k PNGs, which alone takes ~10 s on 2 cores.
        _, labels = tfds.as_numpy(
            builder.as_dataset(
                split=split, batch_size=-1, as_supervised=True, decoders={"image": tfds.decode.SkipDecoding()}
            )
        )
        assert labels.shape == (expected,)
        assert sorted(np.unique(labels)) == list(range(10))
    images, _ = tfds.as_numpy(builder.as_dataset(split="test", batch_size=-1, as_supervised=True))
    assert images.shape == (10_000, 28, 28, 1) and images.dtype == np.uint8
    assert 0 < images.mean() < 255


@pytest.mark.slow
@needs_fashion_mnist_files
def test_prepared_data_loads_without_source_files_in_a_fixed_order(prepared_data_dir, tmp_path):
    # Once prepared, the TFRecords are all a load needs: point the source at an empty directory.
    dataset = data.load(
        "fashion_mnist", "test", 1000, train=False, data_dir=prepared_data_dir, fashion_mnist_dir=tmp_path
    )
    first_images, first_labels = _as_numpy(dataset)
    second_images, second_labels = _as_numpy(dataset)
    assert first_images.shape == (10_000, 28, 28, 1) and first_images.dtype == np.float32
    assert 0.0 <= first_images.min() and first_images.max() <= 1.0
    np.testing.assert_array_equal(first_labels, second_labels)
    np.testing.assert_array_equal(first_images, second_images)


# -- the pipeline, on mocked tfds ------------------------------------------------------------------------
def test_cifar10_train_batches(mocked_tfds):
    dataset = data.load("cifar10", "train", 8, train=True, seed=0)
    batches = [(x.numpy(), y.numpy()) for x, y in dataset]
    assert len(batches) == 20 // 8  # training drops the partial batch
    for images, labels in batches:
        assert images.shape == (8, 32, 32, 3) and images.dtype == np.float32
        assert images.min() >= 0.0 and images.max() <= 1.0
        assert labels.dtype == np.int64 and labels.min() >= 0 and labels.max() < 10


def test_evaluation_keeps_the_partial_batch_and_the_dtype(mocked_tfds):
    dataset = data.load("cifar100", "test", 8, train=False, image_dtype="bfloat16")
    assert [int(x.shape[0]) for x, _ in dataset] == [8, 8, 4]
    assert dataset.element_spec[0].dtype == tf.bfloat16
    assert dataset.element_spec[0].shape.as_list() == [None, 32, 32, 3]


def test_fashion_mnist_batches_are_grey_28x28(mocked_tfds):
    images, labels = next(iter(data.load("fashion_mnist", "train", 4, train=True, seed=0)))
    assert images.shape == (4, 28, 28, 1)
    assert labels.shape == (4,)


def test_evaluation_order_is_deterministic_and_unshuffled(mocked_tfds):
    dataset = data.load("cifar10", "test", 6, train=False)
    first, second = _as_numpy(dataset), _as_numpy(dataset)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    # Mocked splits have no recorded size, so `batch_size=-1` is no option here (it aborts TensorFlow).
    stored = tfds.builder("cifar10").as_dataset(split="test", as_supervised=True).batch(20)
    np.testing.assert_allclose(first[0], _as_numpy(stored)[0] / 255.0, atol=1e-6)


def test_training_with_a_seed_is_reproducible_and_reshuffles_each_epoch(mocked_tfds):
    first = data.load("cifar10", "train", 10, train=True, seed=3)
    second = data.load("cifar10", "train", 10, train=True, seed=3)
    epoch_1, epoch_2 = _as_numpy(first), _as_numpy(first)
    np.testing.assert_array_equal(epoch_1[0], _as_numpy(second)[0])
    assert not np.array_equal(epoch_1[0], epoch_2[0])


def test_epoch_passes_equal_load_with_their_seeds_and_read_the_files_once(mocked_tfds, monkeypatch):
    reads = []
    read = pipeline._read_examples
    monkeypatch.setattr(pipeline, "_read_examples", lambda *args, **kwargs: reads.append(1) or read(*args, **kwargs))
    passes = data.epoch_loader("cifar10", "train", 6, train=True, read_seed=3)
    for seed in (3, 4, 3):
        got, expected = _as_numpy(passes(seed)), _as_numpy(data.load("cifar10", "train", 6, train=True, seed=seed))
        np.testing.assert_array_equal(got[0], expected[0])
        np.testing.assert_array_equal(got[1], expected[1])
    assert len(reads) == 1 + 3  # the loader's one read, then one per data.load
    assert not np.array_equal(_as_numpy(passes(3))[1], _as_numpy(passes(4))[1])


def test_pipelines_run_without_the_autotuner_whose_thread_stalls_iterator_destruction(mocked_tfds):
    # With autotuning on, each iterator's destructor waits for the autotuner's sleeping thread (docs/data.md).
    assert data.load("cifar10", "test", 8, train=False).options().autotune.enabled is False
    assert data.epoch_loader("cifar10", "train", 8, train=True)(1).options().autotune.enabled is False


def test_epoch_passes_without_a_cache_read_the_files_each_time(mocked_tfds, monkeypatch):
    reads = []
    read = pipeline._read_examples
    monkeypatch.setattr(pipeline, "_read_examples", lambda *args, **kwargs: reads.append(1) or read(*args, **kwargs))
    passes = data.epoch_loader("cifar10", "train", 6, train=True, cache=False)
    _as_numpy(passes(0)), _as_numpy(passes(1))
    assert len(reads) == 2


def test_training_augmentation_changes_pixels_not_shapes(mocked_tfds):
    augmented = data.load("cifar10", "train", 10, train=True, seed=5)
    plain = data.load("cifar10", "train", 10, train=True, seed=5, augment="none")
    augmented_images, augmented_labels = _as_numpy(augmented)
    plain_images, plain_labels = _as_numpy(plain)
    assert augmented_images.shape == plain_images.shape == (20, 32, 32, 3)
    np.testing.assert_array_equal(augmented_labels, plain_labels)  # same shuffle, only pixels move
    assert not np.array_equal(augmented_images, plain_images)


# -- augmentation ----------------------------------------------------------------------------------------
def _is_shifted_copy(augmented, original, allow_flip):
    """Whether ``augmented`` is ``original`` moved by up to PAD pixels (zeros shifted in), maybe mirrored."""
    pad = augment_lib.PAD
    padded = np.pad(original, [(pad, pad), (pad, pad), (0, 0)])
    height, width = original.shape[:2]
    candidates = [augmented, augmented[:, ::-1]] if allow_flip else [augmented]
    return any(
        np.array_equal(candidate, padded[dy : dy + height, dx : dx + width])
        for candidate in candidates
        for dy in range(2 * pad + 1)
        for dx in range(2 * pad + 1)
    )


@pytest.mark.parametrize("augmentation", ["crop", "crop_flip"])
def test_each_augmented_image_is_a_shifted_copy(augmentation):
    pixels = tf.random.stateless_uniform([16, 12, 10, 3], seed=[1, 2], maxval=256, dtype=tf.int32)
    images = tf.cast(pixels, tf.uint8)
    augmented = augment_lib.augment(images, tf.constant([7, 8]), augmentation).numpy()
    assert augmented.shape == images.shape and augmented.dtype == np.uint8
    assert not np.array_equal(augmented, images.numpy())
    for out, original in zip(augmented, images.numpy()):
        assert _is_shifted_copy(out, original, allow_flip=augmentation == "crop_flip")


def test_crop_alone_never_flips():
    # SVHN's default: an asymmetric image must never come back mirrored without a shift explaining it.
    image = np.zeros((1, 9, 9, 1), np.uint8)
    image[0, 4, 0] = 255  # a dot on the left edge; a flip would move it 8 pixels, a crop at most 4
    for seed in range(20):
        out = augment_lib.augment(tf.constant(image), tf.constant([seed, 0]), "crop").numpy()
        assert out[0, :, 5:].max() == 0

"""Tests for the ImageNet-style datasets of sparse_keras.data: imagenet2012 and places365_small.

Pipelines run on ``tfds.testing.mock_data``: with tfds 4.9.10 it works for both builders without their
metadata files (``MockPolicy.AUTO`` falls back to generating examples from the features), giving ImageNet
random-size JPEGs and Places365 256x256 PNGs. The crops themselves are checked on synthetic images.
"""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
tfds = pytest.importorskip("tensorflow_datasets")

from sparse_keras import data  # noqa: E402
from sparse_keras.data import imagenet_preprocessing as preprocessing  # noqa: E402

pytestmark = pytest.mark.tf_only

IMAGENET_STYLE = ["imagenet2012", "places365_small"]
NUM_MOCK_EXAMPLES = 20


@pytest.fixture
def mocked_tfds():
    with tfds.testing.mock_data(num_examples=NUM_MOCK_EXAMPLES):
        yield


def _as_numpy(dataset):
    images, labels = zip(*[(x.numpy(), y.numpy()) for x, y in dataset])
    return np.concatenate(images), np.concatenate(labels)


def _ramp_image(height, width):
    """uint8 image whose red channel grows with the column and green channel with the row."""
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    return np.stack([cols * 250 // (width - 1), rows * 250 // (height - 1), np.full_like(rows, 7)], -1).astype(
        np.uint8
    )


# -- catalogue -------------------------------------------------------------------------------------------
def test_catalogue_entries():
    assert data.dataset_info("imagenet2012") == ((224, 224, 3), 1000, 1_281_167)
    assert data.dataset_info("places365_small") == ((224, 224, 3), 365, 1_803_460)
    for name in IMAGENET_STYLE:
        assert data.CATALOG[name].eval_split == "validation"
        assert data.CATALOG[name].per_example_crop
    assert (data.CATALOG["imagenet2012"].num_eval_examples, data.CATALOG["places365_small"].num_eval_examples) == (
        50_000,
        36_500,
    )
    for name in ("mnist", "fashion_mnist", "cifar10", "cifar100", "svhn_cropped"):
        assert data.CATALOG[name].eval_split == "test" and not data.CATALOG[name].per_example_crop


def test_missing_imagenet_says_where_it_looked_and_names_the_manual_download(tmp_path):
    with pytest.raises(data.DatasetNotFoundError) as error:
        data.load("imagenet2012", "train", 8, train=True, data_dir=tmp_path)
    message = str(error.value)
    assert str(tmp_path / "imagenet2012") in message
    assert str(tmp_path / "downloads" / "manual") in message and "manual_dir" in message
    assert "ILSVRC2012_img_train.tar" in message and "ILSVRC2012_img_val.tar" in message
    assert "image-net.org" in message


# -- the pipeline, on mocked tfds ------------------------------------------------------------------------
@pytest.mark.parametrize("name", IMAGENET_STYLE)
def test_training_batches_are_224_crops_in_unit_range(mocked_tfds, name):
    images, labels = _as_numpy(data.load(name, "train", 8, train=True, seed=0))
    assert images.shape == (16, 224, 224, 3) and images.dtype == np.float32  # partial batch dropped
    assert images.min() >= 0.0 and images.max() <= 1.0 and images.std() > 0.05
    assert labels.dtype == np.int64 and labels.min() >= 0 and labels.max() < data.CATALOG[name].num_classes


@pytest.mark.parametrize("name", IMAGENET_STYLE)
def test_evaluation_is_deterministic_and_keeps_the_partial_batch(mocked_tfds, name):
    dataset = data.load(name, data.CATALOG[name].eval_split, 8, train=False, image_dtype="bfloat16")
    assert [int(x.shape[0]) for x, _ in dataset] == [8, 8, 4]
    assert dataset.element_spec[0].shape.as_list() == [None, 224, 224, 3]
    assert dataset.element_spec[0].dtype == tf.bfloat16
    first, second = _as_numpy(dataset), _as_numpy(dataset)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])


def test_training_with_a_seed_is_reproducible_and_recrops_each_epoch(mocked_tfds):
    first = data.load("imagenet2012", "train", 10, train=True, seed=3)
    second = data.load("imagenet2012", "train", 10, train=True, seed=3)
    other_seed = data.load("imagenet2012", "train", 10, train=True, seed=4)
    epoch_1, epoch_2 = _as_numpy(first), _as_numpy(first)
    np.testing.assert_array_equal(epoch_1[0], _as_numpy(second)[0])
    assert not np.array_equal(epoch_1[0], epoch_2[0])
    assert not np.array_equal(epoch_1[0], _as_numpy(other_seed)[0])


def test_training_without_augmentation_uses_the_evaluation_crop(mocked_tfds):
    # Mocked splits hold the same examples, so each unaugmented training image is some evaluation image.
    plain, _ = _as_numpy(data.load("places365_small", "train", 10, train=True, seed=1, augment="none"))
    evaluation, _ = _as_numpy(data.load("places365_small", "validation", 10, train=False))
    assert all(any(np.array_equal(image, candidate) for candidate in evaluation) for image in plain)


# -- the crops -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("height, width", [(256, 512), (512, 256), (256, 256)])
def test_central_crop_of_an_image_with_a_256_shorter_side_is_its_centre(height, width):
    image = _ramp_image(height, width)
    top, left = (height - 224) // 2, (width - 224) // 2
    crop = preprocessing.central_crop(tf.constant(image), 224).numpy()
    np.testing.assert_array_equal(crop, image[top : top + 224, left : left + 224])


@pytest.mark.parametrize("height, width", [(256, 512), (512, 256)])
def test_central_crop_first_resizes_the_shorter_side_keeping_the_aspect_ratio(height, width):
    # Twice as large, same content: after resizing the shorter side to 256 the crop must be the same.
    reference = preprocessing.central_crop(tf.constant(_ramp_image(height, width)), 224).numpy()
    large = preprocessing.central_crop(tf.constant(_ramp_image(2 * height, 2 * width)), 224).numpy()
    assert large.shape == (224, 224, 3)
    np.testing.assert_allclose(large.astype(int), reference.astype(int), atol=2)


def test_random_windows_follow_the_inception_ranges():
    shape = tf.constant([300, 400, 3])
    areas, aspects = [], []
    for seed in range(100):
        begin, size = (t.numpy() for t in preprocessing.random_crop_window(shape, tf.constant([seed, 1])))
        assert (begin >= 0).all() and (begin + size <= [300, 400]).all()
        areas.append(size.prod() / (300 * 400))
        aspects.append(size[1] / size[0])
    assert 0.08 - 0.01 <= min(areas) and max(areas) <= 1.0
    # Integer window sides round the ratio a little past its bounds.
    assert 0.75 - 0.03 <= min(aspects) and max(aspects) <= 4 / 3 + 0.03
    assert max(areas) - min(areas) > 0.5  # the windows do vary


def test_jpeg_is_cropped_while_decoding_like_after_decoding():
    jpeg = tf.io.encode_jpeg(tf.constant(_ramp_image(120, 90)))
    png = tf.io.encode_png(tf.io.decode_jpeg(jpeg))  # the same pixels, losslessly, in another encoding
    for seed in range(5):
        fused = preprocessing.decode_and_random_crop(jpeg, tf.constant([seed, 2])).numpy()
        sliced = preprocessing.decode_and_random_crop(png, tf.constant([seed, 2])).numpy()
        assert fused.shape == sliced.shape and fused.shape[2] == 3  # the same window
        # Only chroma upsampling along the window's border may differ: it lacks the neighbours outside.
        np.testing.assert_array_equal(fused[1:-1, 1:-1], sliced[1:-1, 1:-1])
        np.testing.assert_allclose(fused.astype(int), sliced.astype(int), atol=3)


def test_training_crop_flips_about_half_the_images():
    encoded = tf.io.encode_png(tf.constant(_ramp_image(64, 48)))
    flipped = 0
    for seed in range(16):
        seed = tf.constant([seed, 3])
        plain = preprocessing.train_crop(encoded, seed, 32, flip=False).numpy()
        maybe_flipped = preprocessing.train_crop(encoded, seed, 32, flip=True).numpy()
        assert plain.shape == (32, 32, 3) and plain.dtype == np.uint8
        if not np.array_equal(maybe_flipped, plain):
            np.testing.assert_array_equal(maybe_flipped, plain[:, ::-1])
            flipped += 1
    assert 3 <= flipped <= 13

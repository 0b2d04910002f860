"""The standard ImageNet crops, one example at a time: Inception random-resized crop to train, central to evaluate.

ImageNet and Places365 images come in many sizes, so unlike the fixed-size sets (:mod:`augment`) each
example is cropped to the model's square input on its own, before batching:

* training: a random window covering 8%-100% of the image area with aspect ratio 3/4-4/3 (Szegedy et al.
  2015, "Going deeper with convolutions", sec. 6; torchvision's ``RandomResizedCrop`` defaults), resized to
  ``size`` x ``size``, then mirrored with probability 1/2;
* evaluation: resize the shorter side to ``size * 256 / 224`` keeping the aspect ratio, then take the
  central ``size`` x ``size`` square (He et al. 2016's 224-of-256 single-crop protocol).

JPEG bytes are cropped while decoding (``decode_and_crop_jpeg``, the fused op TensorFlow's own ImageNet
pipelines use, which skips the inverse DCT outside the window; on a synthetic 500x375 JPEG on this
machine it ran as fast as a whole decode, ~390 images/s per core); other encodings (PNG) are decoded whole,
then sliced with the same window. Randomness is stateless, one seed pair per example, so a fixed seed
reproduces every crop. Crops come back as uint8, so batching copies a quarter of the bytes float32 would.
"""

import tensorflow as tf

from sparse_keras.data import augment as augment_lib

# Inception-style crop ranges, as fractions of the image area and as width / height.
AREA_RANGE = (0.08, 1.0)
ASPECT_RATIO_RANGE = (3.0 / 4.0, 4.0 / 3.0)
# Windows tried before giving up; then the whole image is used (TensorFlow's fallback; torchvision's is
# a central crop). With a 4:3-ish photo the first try almost always fits.
MAX_ATTEMPTS = 10
# Evaluation resizes the shorter side to this multiple of the crop size: 256 for a 224 crop.
RESIZE_RATIO = 256 / 224


def random_crop_window(image_shape, seed):
    """``(begin, size)`` of a random Inception crop of an image of shape ``[H, W, C]``, as ``[y, x]`` pairs."""
    whole_image = tf.constant([[[0.0, 0.0, 1.0, 1.0]]])
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        image_shape,
        bounding_boxes=whole_image,
        seed=seed,
        # The box is the whole image, so "covers 8% of the box" is the same lower bound as area_range's.
        min_object_covered=AREA_RANGE[0],
        aspect_ratio_range=ASPECT_RATIO_RANGE,
        area_range=AREA_RANGE,
        max_attempts=MAX_ATTEMPTS,
        use_image_if_no_bounding_boxes=True,
    )
    return begin[:2], size[:2]


def decode_image(image_bytes):
    """Any tfds-stored encoding (JPEG, PNG, grey or colour) to a uint8 ``[H, W, 3]`` tensor."""
    image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def decode_and_random_crop(image_bytes, seed):
    """Decodes only a random Inception window of an encoded image; uint8 ``[h, w, 3]``, its size varying."""

    def jpeg():
        begin, size = random_crop_window(tf.image.extract_jpeg_shape(image_bytes), seed)
        return tf.image.decode_and_crop_jpeg(image_bytes, tf.concat([begin, size], axis=0), channels=3)

    def other_encoding():
        image = decode_image(image_bytes)
        begin, size = random_crop_window(tf.shape(image), seed)
        return tf.slice(image, tf.concat([begin, [0]], axis=0), tf.concat([size, [3]], axis=0))

    crop = tf.cond(tf.io.is_jpeg(image_bytes), jpeg, other_encoding)
    crop.set_shape([None, None, 3])
    return crop


def _resize(image, height_width):
    # Anti-aliasing keeps downscaled photos from aliasing, as PIL's resize in torchvision's pipeline does.
    return tf.image.resize(image, height_width, method="bilinear", antialias=True)


def _to_uint8(image):
    return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)


def train_crop(image_bytes, seed, size, flip=True):
    """Random-resized crop of an encoded image to uint8 ``[size, size, 3]``, mirrored half the time if ``flip``."""
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, num=2))
    image = _resize(decode_and_random_crop(image_bytes, crop_seed), [size, size])
    if flip:
        image = tf.image.stateless_random_flip_left_right(image, flip_seed)
    return _to_uint8(image)


def central_crop(image, size):
    """Resizes a uint8 ``[H, W, 3]`` image's shorter side to ``size * 256/224``, returns the central square."""
    height_width = tf.cast(tf.shape(image)[:2], tf.float32)
    shorter = round(size * RESIZE_RATIO)
    resized_shape = tf.cast(tf.round(height_width * shorter / tf.reduce_min(height_width)), tf.int32)
    # Rounding keeps the shorter side exactly `shorter`; the longer one is at least that.
    resized_shape = tf.maximum(resized_shape, shorter)
    offset = (resized_shape - size) // 2
    resized = _resize(image, resized_shape)
    return _to_uint8(tf.slice(resized, tf.concat([offset, [0]], axis=0), [size, size, 3]))


def eval_crop(image_bytes, size):
    """:func:`central_crop` of an encoded image, uint8 ``[size, size, 3]``."""
    return central_crop(decode_image(image_bytes), size)


def crop_examples(dataset, size, *, train, flip=True, seed=None):
    """Maps a dataset of ``(encoded image, label)`` to ``(uint8 [size, size, 3] crop, label)``, unbatched.

    ``train`` picks the random crop (with a fresh seed pair per example, drawn like
    :func:`sparse_keras.data.augment.seed_pairs`) or the deterministic central crop.
    """
    if not train:
        return dataset.map(
            lambda image, label: (eval_crop(image, size), label), num_parallel_calls=tf.data.AUTOTUNE
        )
    return tf.data.Dataset.zip((dataset, augment_lib.seed_pairs(seed))).map(
        lambda example, pair: (train_crop(example[0], pair, size, flip=flip), example[1]),
        num_parallel_calls=tf.data.AUTOTUNE,
    )

"""The base architectures of the structured-sparsity paper Table 2, in plain and ResNet variants.

Each base architecture is a list of ``(d_hat_i, s_hat_i)`` per conv layer: the most kernels a layer may
keep and the largest size they may have. Training with Omega_1 / Omega_2 picks the widths ``d_i <= d_hat_i``
and sizes ``s_ij <= s_hat_i``; the shrinker then builds the smaller network.

========================  ===  ==============================================================
name                      D    (d_hat, s_hat) per conv layer (+ the Dense classifier)
========================  ===  ==============================================================
``ssr_imagenet8``         8    (64, 7), (64, 3) x2, (128, 3) x2, (256, 3) x2
``ssr_imagenet18``        18   (64, 7), (64, 3) x4, (128, 3) x4, (256, 3) x4, (512, 3) x4
``ssr_cifar20``           20   (16, 3) x7, (32, 3) x6, (64, 3) x6
``ssr_cifar20_k5``        20   (64, 5) x19  ("squared constraints")
========================  ===  ==============================================================

Choices the draft leaves open, fixed here (our choices; see docs/frontier.md):

* ResNet variants put shortcuts "across pairs of layers starting with the second layer" (Table 2 caption),
  so layer 1 is a stem and layers (2, 3), (4, 5), ... are residual pairs. Where a pair changes width or
  resolution the shortcut is a 1x1 conv with stride + its own kernel (He et al.'s option B), so that
  every weight is a kernel the regularizers and the shrinker see. ``plain=True`` drops every shortcut.
* Resolution halves at the first layer of each new width (ResNet-18/ResNet-20 layouts); the ImageNet
  stems are a stride-2 7x7 conv and a 3x3 stride-2 max-pool, as in ResNet-18.
* Table 2 lists (64, 5) x18 for the squared-constraint CIFAR net, which with the classifier makes 19, not
  the stated D = 20; we build 19 conv layers (the ResNet-20 layout at width 64, 5x5 kernels).
* No BatchNorm by default (``batch_norm=False``): behind a BN the loss does not see a kernel's scale, so a
  group lasso shrinks every kernel alike instead of selecting some (the draft's BN variant is
  unspecified). Convs then carry a bias. ``batch_norm=True`` gives the usual conv-BN-ReLU.
* Without BN, each residual unit adds its branch's variance to the trunk's, which then grows as 2^units
  under He initialisation (512x for ResNet-20's 9 units) and plain SGD fails to start. So the second conv
  of a residual pair is He-initialised with its variance divided by the number of units (as in Fixup,
  Zhang et al. 2019), which keeps the trunk's variance below e times the stem's. Its kernels stay far
  from zero (a zero init would already sit below tau).
* ``width_multiplier`` scales every d_hat_i (rounded, at least 1): the uniformly thinned baselines of
  the efficient frontier and narrower CI-sized bases.

Layer names are stable (``conv1``, ``conv2``, .., ``shortcut3``, ``classifier``) because reports, masks and
plots refer to layers by name; conv ``i`` is layer ``i`` of the table.
"""

import numbers

import keras
from keras import layers

from sparse_keras.models import registry

BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9

# (d_hat_i, s_hat_i, stride_i) per conv layer; stride 2 where a new width starts (and in the stem).
BASES = {
    "ssr_imagenet8": [(64, 7, 2)] + [(64, 3, 1)] * 2 + [(128, 3, 2), (128, 3, 1)] + [(256, 3, 2), (256, 3, 1)],
    "ssr_imagenet18": [(64, 7, 2)]
    + [(64, 3, 1)] * 4
    + [(128, 3, 2)] + [(128, 3, 1)] * 3
    + [(256, 3, 2)] + [(256, 3, 1)] * 3
    + [(512, 3, 2)] + [(512, 3, 1)] * 3,
    "ssr_cifar20": [(16, 3, 1)] * 7 + [(32, 3, 2)] + [(32, 3, 1)] * 5 + [(64, 3, 2)] + [(64, 3, 1)] * 5,
    "ssr_cifar20_k5": [(64, 5, 1)] * 7 + [(64, 5, 2)] + [(64, 5, 1)] * 5 + [(64, 5, 2)] + [(64, 5, 1)] * 5,
}
IMAGENET_STEM_POOL = ("ssr_imagenet8", "ssr_imagenet18")


def base_architecture(name):
    """The ``[(d_hat_i, s_hat_i), ...]`` of a Table 2 base architecture (conv layers only)."""
    if name not in BASES:
        raise ValueError(f"Unknown the structured-sparsity paper base architecture {name!r}; known: {sorted(BASES)}")
    return [(d, s) for d, s, _ in BASES[name]]


def ssr_network(
    layers_spec,
    num_classes=10,
    input_shape=(32, 32, 3),
    plain=False,
    batch_norm=False,
    width_multiplier=1.0,
    stem_pool=False,
    classifier_activation=None,
    name="ssr_network",
):
    """A conv stack with optional shortcuts across pairs of layers from the second one on.

    Args:
      layers_spec: ``[(d_hat_i, s_hat_i, stride_i), ...]`` per conv layer (at least one).
      num_classes: width of the Dense classifier (logits unless ``classifier_activation``).
      input_shape: ``(height, width, channels)``.
      plain: no shortcuts.
      batch_norm: conv-BN-ReLU instead of conv(+bias)-ReLU; see the module docstring for why it is off.
      width_multiplier: every width becomes ``max(1, round(d_hat_i * width_multiplier))``.
      stem_pool: a 3x3 stride-2 max-pool after the first layer (the ImageNet stems).
      classifier_activation: activation of the classifier.
      name: model name.

    Returns:
      A functional ``keras.Model``.
    """
    num_classes = registry.check_num_classes(num_classes)
    input_shape = registry.check_input_shape(input_shape)
    if len(input_shape) != 3:
        raise ValueError(f"The structured-sparsity paper's networks take images (height, width, channels); got input_shape={input_shape!r}")
    if not layers_spec:
        raise ValueError("layers_spec needs at least one conv layer, got an empty list")
    multiplier = _check_multiplier(width_multiplier)
    spec = [(max(1, int(round(d * multiplier))), s, stride) for d, s, stride in layers_spec]

    inputs = keras.Input(shape=input_shape, name="image")
    x = _conv_unit(inputs, *spec[0], index=1, batch_norm=batch_norm)
    if stem_pool:
        x = layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    units = 0 if plain else (len(spec) - 1) // 2
    index = 2
    while index <= len(spec):
        pair = spec[index - 1 : index + 1]
        if plain or len(pair) < 2:  # a trailing odd layer has no partner: it stays a plain layer
            for offset, (d, s, stride) in enumerate(pair):
                x = _conv_unit(x, d, s, stride, index=index + offset, batch_norm=batch_norm)
        else:
            x = _residual_pair(x, pair, index, batch_norm, units)
        index += len(pair)
    x = layers.GlobalAveragePooling2D(name="global_pool")(x)
    outputs = layers.Dense(num_classes, activation=classifier_activation, name="classifier")(x)
    return keras.Model(inputs, outputs, name=name)


def _residual_pair(x, pair, index, batch_norm, units):
    """``relu(conv_b(relu(conv_a(x))) + shortcut(x))``: a residual unit over layers ``index``, ``index + 1``."""
    (d_a, s_a, stride), (d_b, s_b, stride_b) = pair
    y = _conv_unit(x, d_a, s_a, stride, index=index, batch_norm=batch_norm)
    # Behind a BN the scale is normalised away; without one, damp the branch (module docstring).
    initializer = "he_normal" if batch_norm else keras.initializers.VarianceScaling(2.0 / units, "fan_in", "truncated_normal")
    y = _conv_unit(y, d_b, s_b, stride_b, index=index + 1, batch_norm=batch_norm, relu=False, initializer=initializer)
    shortcut = x
    total_stride = stride * stride_b
    if total_stride != 1 or x.shape[-1] != d_b:
        shortcut = _conv(d_b, 1, total_stride, f"shortcut{index}", use_bias=not batch_norm)(x)
        if batch_norm:
            shortcut = _batch_norm(f"shortcut{index}_bn")(shortcut)
    y = layers.Add(name=f"add{index + 1}")([y, shortcut])
    return layers.ReLU(name=f"relu{index + 1}")(y)


def _conv_unit(x, filters, size, stride, index, batch_norm, relu=True, initializer="he_normal"):
    x = _conv(filters, size, stride, f"conv{index}", use_bias=not batch_norm, initializer=initializer)(x)
    if batch_norm:
        x = _batch_norm(f"bn{index}")(x)
    return layers.ReLU(name=f"relu{index}")(x) if relu else x


def _conv(filters, size, stride, name, use_bias, initializer="he_normal"):
    return layers.Conv2D(filters, size, strides=stride, padding="same", use_bias=use_bias,
                         kernel_initializer=initializer, name=name)


def _batch_norm(name):
    return layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name)


def _check_multiplier(value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value < float("inf"):
        raise ValueError(f"width_multiplier must be a positive finite number, got width_multiplier={value!r}")
    return float(value)


def _register(name, default_input_shape):
    def builder(num_classes=10, input_shape=default_input_shape, **kwargs):
        kwargs.setdefault("stem_pool", name in IMAGENET_STEM_POOL)
        kwargs.setdefault("name", f"{'plain' if kwargs.get('plain') else 'resnet'}_{name}")
        return ssr_network(BASES[name], num_classes=num_classes, input_shape=input_shape, **kwargs)

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = f"The structured-sparsity paper's Table 2 base architecture {name!r} (``plain=True`` for the plain variant); see `ssr_network`."
    return registry.register(name)(builder)


ssr_imagenet8 = _register("ssr_imagenet8", (224, 224, 3))
ssr_imagenet18 = _register("ssr_imagenet18", (224, 224, 3))
ssr_cifar20 = _register("ssr_cifar20", (32, 32, 3))
ssr_cifar20_k5 = _register("ssr_cifar20_k5", (32, 32, 3))

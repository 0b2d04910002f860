"""Rebuilding an existing model with LRSD layers in place of its convolutions (Guo et al. 2019, section III-A).

LRSD trains the factorised network from scratch, so :func:`to_lrsd` returns a fresh, randomly initialised
copy of the architecture (``keras.models.clone_model``) where the chosen ``Conv2D``/``Dense`` layers are
:class:`~sparse_keras.layers.LRSDConv2D`/:class:`~sparse_keras.layers.LRSDDense` with the same name,
width, kernel size, stride, padding, bias and activation; every other layer is cloned unchanged.
"""

import keras

from sparse_keras.layers import lrsd as lrsd_layers


def paper_sparse_only(layer):
    """The paper's CIFAR choice: fully connected and 1x1 conv layers get only the sparse term ``S``."""
    return isinstance(layer, keras.layers.Dense) or tuple(layer.kernel_size) == (1, 1)


def to_lrsd(model, rank=1, where=None, sparse_only=paper_sparse_only, sparse_l1=2e-6, batch_norm=True, **layer_kwargs):
    """A copy of ``model`` whose convolutions and dense layers are LRSD layers ``W = U V + S``.

    Args:
      model: a functional or sequential Keras model (a subclassed model has no graph to rebuild).
      rank: rank of ``U V`` for every decomposed layer: an int, a fraction of the outputs or ``"K/n"``.
      where: which layers to replace: ``None`` for every ``Conv2D`` and ``Dense`` (the classifier too, as
        the paper compresses it), a callable ``layer -> bool`` or an iterable of layers or layer names.
      sparse_only: ``layer -> bool``, or a bool for all: layers that get only ``S`` (default: Dense and 1x1
        convs, the paper's CIFAR setting).
      sparse_l1: l1 strength on every ``S`` (eq. 4; 2e-6 on CIFAR, 1e-6 on ImageNet).
      batch_norm: a BN after ``U`` in the conv layers (the paper's small-dataset module).
      **layer_kwargs: passed to every LRSD layer (e.g. ``batch_norm_gamma``); by default each layer keeps
        the kernel and bias initializers of the layer it replaces.

    Returns:
      A new ``keras.Model`` with fresh weights and the same inputs, outputs and layer names.
    """
    if not isinstance(model, (keras.Sequential, keras.Model)) or not _has_graph(model):
        raise ValueError(f"to_lrsd needs a functional or sequential model; {model!r} is subclassed or not a model")
    pick = _selector(model, where)
    only = sparse_only if callable(sparse_only) else (lambda layer: bool(sparse_only))

    def clone(layer):
        if not pick(layer):
            return layer.__class__.from_config(layer.get_config())
        return _lrsd_layer(layer, rank, only(layer), sparse_l1, batch_norm, layer_kwargs)

    return keras.models.clone_model(model, clone_function=clone)


def _has_graph(model):
    if isinstance(model, keras.Sequential):
        return True
    return getattr(model, "_is_graph_network", False) or hasattr(model, "_nodes_by_depth")


def _is_plain(layer):
    # Exact classes: DepthwiseConv2D/SeparableConv2D are not a W of eq. 1.
    return type(layer) in (keras.layers.Conv2D, keras.layers.Dense)


def _selector(model, where):
    if where is None:
        return _is_plain
    # A Keras layer is callable too: test for one before taking ``where`` as a predicate.
    if callable(where) and not isinstance(where, keras.layers.Layer):
        return lambda layer: _is_plain(layer) and bool(where(layer))
    items = [where] if isinstance(where, (str, keras.layers.Layer)) else list(where)
    bad = [n for n in items if not isinstance(n, (str, keras.layers.Layer))]
    if bad:
        raise ValueError(f"where must be None, a callable, layers or layer names; got where={where!r} with {bad!r}")
    names = {n.name if isinstance(n, keras.layers.Layer) else n for n in items}
    by_name = {layer.name: layer for layer in model.layers}
    missing = sorted(names - set(by_name))
    if missing:
        raise ValueError(f"where names layers that model {model.name!r} does not have: {missing}")
    unsupported = sorted(n for n in names if not _is_plain(by_name[n]))
    if unsupported:
        raise ValueError(f"where names layers that are not Conv2D or Dense: {unsupported}")
    return lambda layer: layer.name in names


def _lrsd_layer(layer, rank, sparse_only, sparse_l1, batch_norm, layer_kwargs):
    config = layer.get_config()
    common = dict(
        rank=rank,
        sparse_only=sparse_only,
        use_bias=config["use_bias"],
        activation=config["activation"],
        sparse_l1=sparse_l1,
        name=layer.name,
        # V, U and S start like the kernel they replace unless told otherwise [our choice].
        kernel_initializer=config["kernel_initializer"],
        bias_initializer=config["bias_initializer"],
    )
    common.update(layer_kwargs)
    if isinstance(layer, keras.layers.Dense):
        return lrsd_layers.LRSDDense(config["units"], **common)
    unsupported = {
        "groups": (config.get("groups", 1), 1),
        "dilation_rate": (tuple(config.get("dilation_rate", (1, 1))), (1, 1)),
        "data_format": (config.get("data_format") or "channels_last", "channels_last"),
    }
    for key, (value, allowed) in unsupported.items():
        if value != allowed:
            raise ValueError(f"Layer {layer.name!r} has {key}={value!r}; LRSDConv2D supports only {key}={allowed!r}")
    return lrsd_layers.LRSDConv2D(
        config["filters"],
        config["kernel_size"],
        strides=config["strides"],
        padding=config["padding"],
        batch_norm=batch_norm,
        **common,
    )


def from_lrsd(model):
    """The plain model computing what ``model`` computes at inference: each LRSD layer folded into one layer.

    An LRSD conv becomes a ``Conv2D`` (an LRSD dense a ``Dense``) with kernel ``(U diag(a)) V + S`` and bias
    ``c (+ bias)``, where ``a z + c`` is the BN after ``U`` with its moving statistics
    (:meth:`~sparse_keras.layers.LRSDConv2D.folded_kernel_and_bias`); every other layer keeps its weights.
    This is the "execute S densely, in one conv" baseline of the LRSD speed benchmark and a deployment
    format for when ``U V + S`` is not smaller than ``W``.
    """
    if not _has_graph(model):
        raise ValueError(f"from_lrsd needs a functional or sequential model; {model!r} is subclassed or not a model")

    def clone(layer):
        if not lrsd_layers.is_lrsd_layer(layer):
            return layer.__class__.from_config(layer.get_config())
        common = dict(use_bias=True, activation=layer.activation, name=layer.name)
        if isinstance(layer, lrsd_layers.LRSDDense):
            return keras.layers.Dense(layer.units, **common)
        return keras.layers.Conv2D(
            layer.filters, layer.kernel_size, strides=layer.strides, padding=layer.padding, **common
        )

    folded = keras.models.clone_model(model, clone_function=clone)
    for layer in model.layers:
        target = folded.get_layer(layer.name)
        if lrsd_layers.is_lrsd_layer(layer):
            kernel, bias = layer.folded_kernel_and_bias()
            target.set_weights([keras.ops.convert_to_numpy(kernel), keras.ops.convert_to_numpy(bias)])
        elif layer.weights:
            target.set_weights(layer.get_weights())
    return folded

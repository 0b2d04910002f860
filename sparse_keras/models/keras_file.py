"""A saved architecture as a registry model: ``models.get("keras_file", path=..., reinitialize=True)``.

What the structured-sparsity paper's architecture selection produces is an architecture: the shrunk model of a learned point. To
ask whether the *architecture* is better than a hand-made one (and not just its trained weights), it is
trained again from scratch, through the same binary and config as any registry model. :func:`reinitialized`
prepares such a file: the shrunk model's layers carry zero initializers (its weights are set after
building), so they get back the initializers of the base model's layers of the same name.
"""

import os

import keras

from sparse_keras.models import registry


@registry.register("keras_file")
def keras_file(num_classes, input_shape, path, reinitialize=False):
    """The model saved at ``path`` (a ``.keras`` file); with ``reinitialize``, fresh weights from its layers'
    initializers. Its input shape and number of classes must be the ones asked for."""
    if not isinstance(path, str) or not os.path.isfile(path):
        raise ValueError(f"model.kwargs.path must name an existing .keras file, got path={path!r}")
    model = keras.saving.load_model(path, compile=False)
    shape = tuple(model.input_shape[1:])
    if shape != tuple(input_shape):
        raise ValueError(f"The model in {path} takes inputs of shape {shape}, not the data's input_shape={tuple(input_shape)}")
    classes = model.output_shape[-1]
    if classes != num_classes:
        raise ValueError(f"The model in {path} has {classes} outputs, not num_classes={num_classes}")
    return keras.models.clone_model(model) if reinitialize else model


def reinitialized(model, like=None):
    """A copy of ``model`` with fresh weights; initializers come from ``like``'s layer of the same name,
    else from the layer class's defaults (never the zeros a shrunk model's config carries)."""
    reference = {layer.name: layer.get_config() for layer in like.layers} if like is not None else {}

    def clone(layer):
        config = layer.get_config()
        keys = [k for k in config if k.endswith("initializer")]
        defaults = _default_initializers(type(layer), config, keys)
        for key in keys:
            config[key] = reference.get(layer.name, {}).get(key, defaults.get(key, config[key]))
        return type(layer).from_config(config)

    return keras.models.clone_model(model, clone_function=clone)


def _default_initializers(layer_class, config, keys):
    """The initializers a ``layer_class`` built from ``config`` without them would have."""
    try:
        fresh = layer_class.from_config({k: v for k, v in config.items() if k not in keys})
    except (TypeError, ValueError):  # a required initializer argument: keep the config's
        return {}
    fresh_config = fresh.get_config()
    return {k: fresh_config[k] for k in keys if k in fresh_config}

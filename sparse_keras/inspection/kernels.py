"""Which weights of a model can be sparsified, and how they are laid out.

Built-in Keras layers are described by a registry keyed by class (never by weight-name suffix); a custom
layer opts in with one method, ``sparsifiable_kernels(self) -> list[KernelSlot]`` (see :class:`Sparsifiable`).
Regularizers, thresholds, analysis and (later) ADMM and shrinking all find their kernels here.
"""

import dataclasses

import keras


@dataclasses.dataclass(frozen=True)
class KernelSlot:
    """One sparsifiable kernel: the layer, the attribute holding the variable, the constructor argument
    holding its regularizer (so that ``get_config`` saves it), and its layout for the group math."""

    layer: keras.layers.Layer
    weight_attr: str
    regularizer_attr: str | None
    layout: str  # "conv", "depthwise" or "dense", see sparse_keras.ops.groups.canonical_kernel

    @property
    def variable(self):
        return getattr(self.layer, self.weight_attr)

    @property
    def path(self):
        return self.variable.path

    @property
    def shape(self):
        return tuple(int(d) for d in self.variable.shape)


class Sparsifiable:
    """Mixin documenting the interface a custom layer implements to expose its kernels."""

    def sparsifiable_kernels(self):
        """Returns a list of :class:`KernelSlot` for this layer's sparsifiable weights."""
        return []


# (layer class, [(weight attribute, regularizer attribute, layout)]); the first matching class wins,
# so subclasses come before their bases.
_BUILTIN = (
    (keras.layers.DepthwiseConv2D, (("kernel", "depthwise_regularizer", "depthwise"),)),
    (
        keras.layers.SeparableConv2D,
        (
            ("depthwise_kernel", "depthwise_regularizer", "depthwise"),
            ("pointwise_kernel", "pointwise_regularizer", "conv"),
        ),
    ),
    (keras.layers.Conv1D, (("kernel", "kernel_regularizer", "conv"),)),
    (keras.layers.Conv2D, (("kernel", "kernel_regularizer", "conv"),)),
    (keras.layers.Conv3D, (("kernel", "kernel_regularizer", "conv"),)),
    (keras.layers.Dense, (("kernel", "kernel_regularizer", "dense"),)),
)


def kernel_slots(layer):
    """The sparsifiable kernels of one (built) layer; empty for layers without any."""
    if hasattr(layer, "sparsifiable_kernels"):
        return list(layer.sparsifiable_kernels())
    if not layer.built:
        return []
    for cls, specs in _BUILTIN:
        if isinstance(layer, cls):
            if getattr(layer, "lora_enabled", False):
                # The effective kernel of a LoRA layer is a sum; its frozen base is not ours to prune.
                return []
            return [KernelSlot(layer, w, r, layout) for w, r, layout in specs]
    return []


def iter_layers(model):
    """All layers of ``model``, descending into nested models, each once, in model order."""
    seen = set()

    def walk(layer):
        for sub in getattr(layer, "layers", ()):
            if id(sub) in seen:
                continue
            seen.add(id(sub))
            yield sub
            if getattr(sub, "layers", None) is not None and not hasattr(sub, "sparsifiable_kernels"):
                yield from walk(sub)

    yield from walk(model)


def model_kernel_slots(model):
    """Every sparsifiable kernel of ``model`` in model (topological) order, shared variables once."""
    slots, seen = [], set()
    for layer in iter_layers(model):
        for slot in kernel_slots(layer):
            if id(slot.variable) not in seen:
                seen.add(id(slot.variable))
                slots.append(slot)
    return slots


def select_slots(model, where=None, exclude_classifier=True):
    """The kernel slots picked by ``where``.

    ``where`` is ``None`` (every sparsifiable kernel), a callable ``layer -> bool``, a layer, or an
    iterable of layers, layer names and layer classes. With ``exclude_classifier`` the model's last kernel (its classifier,
    which the papers never regularize or prune) is left out. Returns ``(slots, explicit)`` where
    ``explicit`` says whether the user named the layers (then unsupported ones are an error, not skipped).
    """
    if not model.built:
        raise ValueError(f"Model {model.name!r} is not built; call it on data or build(input_shape) first")
    slots = model_kernel_slots(model)
    classifier = slots[-1].layer if (exclude_classifier and slots) else None
    implicit = [s for s in slots if s.layer is not classifier]
    if where is None:
        return implicit, False
    # A Keras layer is callable too: test for one before taking ``where`` as a predicate.
    if callable(where) and not isinstance(where, (type, keras.layers.Layer)):
        return [s for s in implicit if where(s.layer)], True
    items = [where] if isinstance(where, (str, type, keras.layers.Layer)) else list(where)
    bad = [w for w in items if not isinstance(w, (str, type, keras.layers.Layer))]
    if bad:
        raise ValueError(f"where must hold layers, layer names or layer classes; got where={where!r} with {bad!r}")
    objects = [w for w in items if isinstance(w, keras.layers.Layer)]
    own = {id(layer) for layer in iter_layers(model)}
    foreign = sorted(w.name for w in objects if id(w) not in own)
    if foreign:
        raise ValueError(f"where holds layers that are not in model {model.name!r}: {foreign}")
    names = {w for w in items if isinstance(w, str)} | {w.name for w in objects}
    classes = tuple(w for w in items if isinstance(w, type))
    missing = sorted(names - {layer.name for layer in iter_layers(model)})
    if missing:
        raise ValueError(f"where names layers that model {model.name!r} does not have: {missing}")
    # A layer named explicitly is taken even if it is the classifier: the user asked for it.
    chosen = [s for s in slots if s.layer.name in names or (s in implicit and isinstance(s.layer, classes))]
    without_kernel = sorted(names - {s.layer.name for s in chosen})
    if without_kernel:
        raise ValueError(f"where names layers without a sparsifiable kernel: {without_kernel}")
    return chosen, True

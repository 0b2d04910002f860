"""A name -> builder table so that configs and benchmarks can say ``"resnet20"`` instead of importing code.

A builder is a plain function ``builder(num_classes, input_shape, **kwargs) -> keras.Model``; each model
family module registers its builders with :func:`register` when it is imported. The table knows nothing
about any family, so new ones (ADMM paper CNNs, VGG, LST-Net, SDNet) only add a module.
"""

import numbers

_BUILDERS = {}


def register(name):
    """Decorator adding a builder to the registry under ``name``.

    >>> @register("tiny_cnn")
    ... def tiny_cnn(num_classes, input_shape, **kwargs): ...
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"A model name must be a non-empty string, got name={name!r}")

    def decorator(builder):
        if not callable(builder):
            raise ValueError(f"register({name!r}) needs a callable builder, got {builder!r}")
        existing = _BUILDERS.get(name)
        # Reloading a family module (importlib.reload, notebooks) re-registers the same function; only a
        # different builder under a taken name is a real clash.
        if existing is not None and _qualified_name(existing) != _qualified_name(builder):
            raise ValueError(
                f"Model name {name!r} is already registered to {_qualified_name(existing)}; "
                f"cannot register {_qualified_name(builder)} under it too"
            )
        _BUILDERS[name] = builder
        return builder

    return decorator


def available():
    """The registered model names, sorted."""
    return sorted(_BUILDERS)


def get(name, num_classes=10, input_shape=(32, 32, 3), **kwargs):
    """Builds a fresh, randomly initialised model by name.

    Args:
      name: a registered name, see :func:`available`.
      num_classes: width of the classifier, a positive integer.
      input_shape: shape of one example without the batch axis, e.g. ``(32, 32, 3)`` for CIFAR or
        ``(28, 28, 1)`` for Fashion-MNIST; positive integers.
      **kwargs: passed to the family's builder (e.g. ``plain=True`` for the CIFAR ResNets).

    Returns:
      A built ``keras.Model``.
    """
    if name not in _BUILDERS:
        raise ValueError(f"Unknown model name={name!r}; known models are {available()}")
    num_classes = check_num_classes(num_classes)
    input_shape = check_input_shape(input_shape)
    return _BUILDERS[name](num_classes=num_classes, input_shape=input_shape, **kwargs)


def check_num_classes(num_classes):
    """Returns ``num_classes`` as an int, or raises ``ValueError`` naming it."""
    # bool is an Integral, but `num_classes=True` is always a mistake.
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got num_classes={num_classes!r}")
    return int(num_classes)


def check_input_shape(input_shape):
    """Returns ``input_shape`` as a tuple of ints, or raises ``ValueError`` naming it."""
    try:
        dims = tuple(input_shape)
    except TypeError:
        raise ValueError(f"input_shape must be a tuple of positive integers, got input_shape={input_shape!r}") from None
    if not dims or any(isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 1 for d in dims):
        raise ValueError(f"input_shape must be a tuple of positive integers, got input_shape={input_shape!r}")
    return tuple(int(d) for d in dims)


def _qualified_name(builder):
    return f"{getattr(builder, '__module__', '?')}.{getattr(builder, '__qualname__', repr(builder))}"

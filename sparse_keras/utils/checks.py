"""Validation of constructor arguments: each check names the argument, the bad value and what is allowed.

Layers, initializers and training procedures check their arguments when they are built, not when the
first batch arrives, so that a bad config fails where it was written.
"""

import math
import numbers


def positive_int(argument, value):
    """``value`` as an ``int`` if it is an integer ``>= 1`` (``bool`` is rejected); else ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{argument} must be a positive integer, got {argument}={value!r}")
    return int(value)


def non_negative_float(argument, value):
    """``value`` as a ``float`` if it is a finite real number ``>= 0`` (``bool`` is rejected)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{argument} must be a finite non-negative number, got {argument}={value!r}")
    return float(value)


def positive_float(argument, value):
    """``value`` as a ``float`` if it converts to a finite number ``> 0``."""
    try:
        ok = float(value) > 0 and math.isfinite(float(value))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"{argument} must be a finite positive float, got {argument}={value!r}")
    return float(value)


def odd_kernel_size(kernel_size, reason="symmetric 'same' padding"):
    """The side of a square kernel, an odd positive integer; ``reason`` says in the error why it must be odd."""
    size = positive_int("kernel_size", kernel_size)
    if size % 2 == 0:
        raise ValueError(f"kernel_size must be odd ({reason}), got kernel_size={kernel_size!r}")
    return size

"""Energy-ratio pruning of one weight tensor (Guo et al. 2019, eq. 6-7).

The energy of a tensor is ``E(s) = sum_i |s_i|``. Pruning keeps the fewest entries that still carry a
fraction ``alpha`` of it, so each layer gets its own sparse rate from the distribution it learned
under the l1 penalty instead of one global magnitude threshold.
"""

import numpy as np

RELATIVE_TOLERANCE = 1e-12  # summation round-off allowed when a kept prefix is compared with alpha * E(s)


def check_alpha(alpha):
    """``alpha`` as a float in ``[0, 1]``, or ``ValueError`` naming it."""
    try:
        value = float(alpha)
    except (TypeError, ValueError):
        raise ValueError(f"alpha must be a float in [0, 1], got alpha={alpha!r}") from None
    if isinstance(alpha, bool) or not 0.0 <= value <= 1.0:
        raise ValueError(f"alpha must be a float in [0, 1], got alpha={alpha!r}")
    return value


def energy_ratio_mask(s, alpha):
    """The 0/1 keep mask of eq. 7: ``min card(I)  s.t.  sum_{i in I} |s_i| >= alpha * E(s)``.

    Solved as the paper does: sort ``|s|`` from large to small and keep the shortest prefix whose sum
    reaches ``alpha * E(s)`` (up to a relative 1e-12 of summation round-off). Among equal magnitudes at
    the cut, the earlier (flattened) entry is kept, so the mask is deterministic. ``alpha = 0`` and an
    all-zero ``s`` keep nothing; ``alpha = 1`` keeps every non-zero entry.

    Args:
      s: an array (any shape, e.g. an ``S`` kernel); must be finite.
      alpha: the energy ratio kept, in ``[0, 1]`` (the paper's default is 0.9).

    Returns:
      A float32 numpy array of ``s``'s shape with 1 on the kept entries.
    """
    alpha = check_alpha(alpha)
    values = np.abs(np.asarray(s, dtype=np.float64))
    if not np.all(np.isfinite(values)):
        raise ValueError("energy_ratio_mask needs a finite s; it holds NaN or inf")
    flat = values.ravel()
    order = np.argsort(-flat, kind="stable")
    kept_energy = np.cumsum(flat[order])
    # A prefix within float rounding of the target reaches it: with ties at the cut (e.g. 33 equal entries
    # and alpha = 1/3) a sequential sum can fall one ulp short and would keep an extra entry.
    target = alpha * kept_energy[-1] * (1 - RELATIVE_TOLERANCE) if flat.size else 0.0
    if target <= 0:
        count = 0
    else:
        # The first prefix reaching the target; the min() guards alpha = 1 against summation round-off.
        count = min(int(np.searchsorted(kept_energy, target, side="left")) + 1, flat.size)
    mask = np.zeros(flat.size, np.float32)
    mask[order[:count]] = 1.0
    return mask.reshape(values.shape)

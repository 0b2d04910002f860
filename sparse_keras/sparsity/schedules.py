"""The increasing sparsity-weight path of ADMM training (Kiaee et al. 2016, Algorithm 1 and section 3.3)."""

import math

import keras
import numpy as np


@keras.saving.register_keras_serializable(package="sparse_keras")
class MuPath:
    """An increasing sequence of sparsity weights ``mu_1 < mu_2 < ...`` and the paper's epoch schedule.

    With 1-based position ``i`` on the path, the W-step of each ADMM iteration trains
    ``epochs(i) = min(i * delta, nu * delta)`` epochs (also the masked fine-tuning length), and at most
    ``max_iterations(i) = min(i, xi)`` ADMM iterations run before moving on.

    The paper uses ``delta=1, nu=15, xi=10``; the authors' code uses ``nu=20`` and the grid
    ``logspace(-4, 0, 20)`` from its second point (:meth:`log_grid` with ``start_index=1``).
    """

    def __init__(self, mus, delta=1, nu=15, xi=10):
        mus = [float(m) for m in mus]
        if not mus:
            raise ValueError("MuPath needs at least one mu")
        bad = [m for m in mus if not math.isfinite(m) or m <= 0]
        if bad:
            raise ValueError(f"Every mu must be a finite positive float; got {bad}")
        if any(b <= a for a, b in zip(mus, mus[1:])):
            raise ValueError(f"The mu path must be strictly increasing; got {mus}")
        for name, value in (("delta", delta), ("nu", nu), ("xi", xi)):
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {name}={value!r}")
        self.mus, self.delta, self.nu, self.xi = mus, int(delta), int(nu), int(xi)

    @classmethod
    def log_grid(cls, start=1e-4, stop=1.0, num=20, start_index=1, **kwargs):
        """``num`` log-spaced values from ``start`` to ``stop``, beginning at ``start_index``."""
        if not 0 <= start_index < num:
            raise ValueError(f"start_index must be in [0, {num}), got start_index={start_index!r}")
        if not (0 < start < stop):
            raise ValueError(f"Need 0 < start < stop, got start={start!r}, stop={stop!r}")
        return cls(np.logspace(math.log10(start), math.log10(stop), num)[start_index:], **kwargs)

    def __len__(self):
        return len(self.mus)

    def mu(self, index):
        """The weight at 0-based ``index``."""
        return self.mus[index]

    def epochs(self, index):
        return min((index + 1) * self.delta, self.nu * self.delta)

    def max_iterations(self, index):
        return min(index + 1, self.xi)

    def get_config(self):
        return {"mus": list(self.mus), "delta": self.delta, "nu": self.nu, "xi": self.xi}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"MuPath({len(self.mus)} values {self.mus[0]:.3g}..{self.mus[-1]:.3g}, delta={self.delta}, nu={self.nu}, xi={self.xi})"

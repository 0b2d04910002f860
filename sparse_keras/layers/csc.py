"""Convolutional sparse coding (CSC) layer of SDNet (Dai et al., NeurIPS 2022).

The layer's output is the non-negative sparse code of its input ``x`` under a learned convolutional
dictionary ``A``::

    z* = argmin_{z >= 0}  lam ||z||_1 + 1/2 ||x - A(z)||^2

computed by ``n_iter`` unrolled FISTA iterations (Dai et al. 2022 eq. A.1), so that backpropagation is plain
automatic differentiation through the iterations.

Operators (Keras Conv2D kernel layout ``(kh, kw, in, filters)``, the official code's direction convention):

* ``A*(x)`` (analysis, x-space -> z-space) is the cross-correlation of ``x`` zero-padded by
  ``p = (k - 1) // 2`` on every side with the kernel, with stride ``s``: a Conv2D.
* ``A(z)`` (synthesis, z-space -> x-space) is its exact adjoint: a 'valid' transposed convolution cropped by
  ``p`` at the top/left to the input size. Keras' 'same' padding pads bottom/right only at stride 2, which
  would make the pair non-adjoint, hence the explicit symmetric padding. On JAX it is computed as
  ``strides**2`` stride-1 convolutions with the flipped kernel (:func:`phase_synthesis`), equal to the
  transposed convolution (:func:`transposed_synthesis`, kept on TensorFlow), whose kernel gradient XLA CPU
  computes 20-50x slower.

Step size ``t = step_factor / L`` (0.9 / L in the paper), ``L`` the dominant eigenvalue of ``A^T A`` by power
iteration (eq. A.4-A.5: at most 50 iterations, stop when ``||v_new - v||_2 < sqrt(1e-5)``, warm-started from
the previous eigenvector, which is kept in the non-trainable ``power_vector``).

How ``step_size`` is refreshed after every optimizer step: in training mode (``training=True``, as
``model.fit`` and ``train_on_batch`` call it) ``call()`` first runs the power iteration on the current --
already updated -- dictionary, uses the fresh ``t`` for this batch and assigns it (and the eigenvector) to
the tracked non-trainable variables ``step_size`` and ``power_vector``. This is the official code's timing
(power iteration before every forward pass on the post-SGD weights) and, because the variables are tracked,
the JAX trainer carries the assignments out of its compiled stateless step like BatchNorm statistics. At
inference the stored ``step_size`` is read as a constant (no power iteration, exported models carry a
number). The update of the very last training step is followed by no forward pass; call
:meth:`CSCConv2D.update_step_size` (or :func:`update_step_sizes` for a model, or use the
:class:`RefreshCSCStepSize` callback, which does it before every evaluation and at the
end of ``fit``) so that inference uses the step of the final dictionary.

Unit-norm atoms (the official code renormalises every atom before each forward pass) are kept with a
``UnitNorm`` kernel constraint over ``(kh, kw, in)``, which Keras applies after every optimizer step on
every backend, and one normalisation at build time.
"""

import math

import keras
from keras import ops

from sparse_keras.ops.sparse_coding import fista, phase_synthesis, transposed_synthesis  # noqa: F401 (public here)
from sparse_keras.utils import checks

POWER_ITERATIONS = 50  # Dai et al. 2022 appendix A
POWER_TOLERANCE = math.sqrt(1e-5)  # on ||v_new - v||_2, Dai et al. 2022 appendix A
_TINY = 1e-12  # keeps 1 / L and v / ||v|| finite for an all-zero dictionary


@keras.saving.register_keras_serializable(package="sparse_keras")
class CSCConv2D(keras.layers.Layer):
    """A convolutional sparse coding layer: ``z = argmin lam ||z||_1 + 1/2 ||x - A(z)||^2`` by unrolled FISTA.

    A drop-in replacement of a bias-free ``Conv2D(filters, kernel_size, strides, padding="same")`` with odd
    ``kernel_size``: same kernel shape (so the same parameter count) and same output size for even inputs.

    Args:
      filters: number of dictionary atoms (code channels), a positive integer.
      kernel_size: odd side of the square atoms (3 and 7 in SDNet).
      lam: sparsity weight lambda >= 0 (0.1 in every SDNet config).
      n_iter: unrolled FISTA iterations, >= 1 (2 in every SDNet config).
      strides: 1 or 2 (stride-2 layers are strided convolutions and their exact adjoints).
      non_negative: solve over ``z >= 0`` (the official ``NONEGATIVE: True``); otherwise the plain lasso.
      normalize_atoms: keep every atom at unit l2 norm.
      lam_trainable: learn lambda (a non-negative scalar) by gradient descent.
      refresh_step_size: run the power iteration in every training-mode call (see the module docstring);
        ``False`` freezes ``step_size`` at its current value.
      step_factor: ``t = step_factor / L``, in ``(0, 1]``; 0.9 in the paper.
      power_iterations: maximum power iterations per refresh.
      power_tolerance: stop once ``||v_new - v||_2`` falls below it.
      kernel_initializer: initializer of the dictionary before normalisation (Kaiming-uniform as PyTorch).
      kernel_regularizer: optional regularizer of the dictionary (e.g. weight decay).

    Attributes:
      kernel: the dictionary, ``(kernel_size, kernel_size, in_channels, filters)``.
      lam: lambda as a variable; assign another value at test time for robust inference (:meth:`set_lam`).
      step_size: the FISTA step ``t`` (non-trainable).
      power_vector: the warm-start eigenvector of ``A^T A``, shape ``(1, H', W', filters)`` (non-trainable).
    """

    def __init__(
        self,
        filters,
        kernel_size,
        lam=0.1,
        n_iter=2,
        strides=1,
        non_negative=True,
        normalize_atoms=True,
        lam_trainable=False,
        refresh_step_size=True,
        step_factor=0.9,
        power_iterations=POWER_ITERATIONS,
        power_tolerance=POWER_TOLERANCE,
        kernel_initializer="he_uniform",
        kernel_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = checks.positive_int("filters", filters)
        self.kernel_size = _odd_kernel_size(kernel_size)
        self.lam_value = checks.non_negative_float("lam", lam)
        self.n_iter = checks.positive_int("n_iter", n_iter)
        if isinstance(strides, (tuple, list)) and len(set(strides)) == 1:
            strides = strides[0]
        if isinstance(strides, bool) or strides not in (1, 2):
            raise ValueError(f"CSCConv2D supports strides 1 or 2, got strides={strides!r}")
        self.strides = int(strides)
        self.non_negative = bool(non_negative)
        self.normalize_atoms = bool(normalize_atoms)
        self.lam_trainable = bool(lam_trainable)
        self.refresh_step_size = bool(refresh_step_size)
        self.step_factor = float(step_factor)
        if not 0.0 < self.step_factor <= 1.0:
            raise ValueError(f"step_factor must lie in (0, 1] for FISTA to converge, got step_factor={step_factor!r}")
        self.power_iterations = checks.positive_int("power_iterations", power_iterations)
        self.power_tolerance = checks.non_negative_float("power_tolerance", power_tolerance)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.padding = (self.kernel_size - 1) // 2
        self.input_spec = keras.layers.InputSpec(ndim=4)

    # ----------------------------------------------------------------------------------------- build / config
    def build(self, input_shape):
        height, width, channels = input_shape[1:]
        if height is None or width is None or channels is None:
            raise ValueError(
                f"{self.name}: CSCConv2D needs a known input height, width and channels (the power iteration "
                f"runs on the code space of that size), got input_shape={tuple(input_shape)!r}"
            )
        self.input_size = (int(height), int(width))
        self.input_spec = keras.layers.InputSpec(ndim=4, axes={-1: channels})
        self.kernel = self.add_weight(
            name="kernel",
            shape=(self.kernel_size, self.kernel_size, channels, self.filters),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=keras.constraints.UnitNorm(axis=(0, 1, 2)) if self.normalize_atoms else None,
        )
        if self.normalize_atoms:
            self.kernel.assign(self.kernel.constraint(self.kernel))
        self.lam = self.add_weight(
            name="lam",
            shape=(),
            initializer=keras.initializers.Constant(self.lam_value),
            trainable=self.lam_trainable,
            constraint=keras.constraints.NonNeg() if self.lam_trainable else None,
        )
        code_height, code_width = self._code_size(self.input_size)
        # All replicas compute the same power iteration from the same weights: keep the first's result.
        self.power_vector = self.add_weight(
            name="power_vector",
            shape=(1, code_height, code_width, self.filters),
            initializer=keras.initializers.RandomNormal(stddev=1.0),
            trainable=False,
            aggregation="only_first_replica",
        )
        self.step_size = self.add_weight(
            name="step_size",
            shape=(),
            initializer="ones",
            trainable=False,
            aggregation="only_first_replica",
        )
        self.update_step_size()

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            kernel_size=self.kernel_size,
            lam=self.lam_value,
            n_iter=self.n_iter,
            strides=self.strides,
            non_negative=self.non_negative,
            normalize_atoms=self.normalize_atoms,
            lam_trainable=self.lam_trainable,
            refresh_step_size=self.refresh_step_size,
            step_factor=self.step_factor,
            power_iterations=self.power_iterations,
            power_tolerance=self.power_tolerance,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            kernel_regularizer=keras.regularizers.serialize(self.kernel_regularizer),
        )
        return config

    def compute_output_shape(self, input_shape):
        code_height, code_width = self._code_size(input_shape[1:3])
        return (input_shape[0], code_height, code_width, self.filters)

    # ------------------------------------------------------------------------------------------- operators
    def analysis(self, x, kernel=None):
        """``A*(x)``: symmetric zero padding by ``p``, then a 'valid' strided cross-correlation."""
        kernel = self.kernel if kernel is None else kernel
        p = self.padding
        x = ops.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
        return ops.conv(x, ops.cast(kernel, x.dtype), strides=self.strides, padding="valid")

    def synthesis(self, z, kernel=None, output_size=None):
        """``A(z)``, the exact adjoint of :meth:`analysis`, of size ``output_size`` (default: the layer's input
        size). JAX: :func:`phase_synthesis` (XLA CPU differentiates the transposed convolution ~20-50x slower
        with respect to its kernel); TensorFlow: :func:`transposed_synthesis`, whose native gradient kernels
        trained SDNet-18-All faster there (benchmarks/RESULTS.md). The two are equal, tested on both backends."""
        kernel = self.kernel if kernel is None else kernel
        output_size = self.input_size if output_size is None else output_size
        synthesis = phase_synthesis if keras.backend.backend() == "jax" else transposed_synthesis
        return synthesis(z, ops.cast(kernel, z.dtype), self.strides, output_size)

    def reconstruct(self, z, output_size=None):
        """The layer input that the code ``z`` explains, ``A(z)`` (Dai et al. 2022 eq. B.2 for one layer).

        ``output_size``: ``(height, width)`` of that input; default the size the layer was built for.
        """
        return self.synthesis(ops.convert_to_tensor(z, dtype=self.compute_dtype), output_size=output_size)

    # ---------------------------------------------------------------------------------------- step size
    def power_iteration(self, kernel=None, vector=None, compiled=True):
        """Dominant eigenpair of ``A^T A`` by power iteration (eq. A.4-A.5), without gradient.

        Returns ``(v, L)`` with ``v`` the unit eigenvector estimate (warm start: ``power_vector``) and
        ``L = ||A(v)||^2 = <v, A* A v>``. ``compiled=True`` writes the loop as ``ops.while_loop`` (inside
        a traced training step); ``False`` runs it as a Python loop, which is much faster eagerly on JAX
        (no loop compilation per layer when a model is built or refreshed on demand).
        """
        kernel = ops.stop_gradient(ops.convert_to_tensor(self.kernel if kernel is None else kernel, "float32"))
        vector = ops.convert_to_tensor(self.power_vector if vector is None else vector, "float32")

        def not_converged(v, change):
            return change >= self.power_tolerance**2

        def step(v, change):
            v_new = _unit(self.analysis(self.synthesis(v, kernel), kernel))
            return v_new, ops.sum(ops.square(v_new - v))

        state = (_unit(vector), ops.convert_to_tensor(float("inf"), "float32"))
        if compiled:
            state = ops.while_loop(not_converged, step, state, maximum_iterations=self.power_iterations)
        else:
            for _ in range(self.power_iterations):
                if not bool(not_converged(*state)):
                    break
                state = step(*state)
        vector = ops.stop_gradient(state[0])
        return vector, ops.sum(ops.square(self.synthesis(vector, kernel)))

    def _fresh_step_size(self, compiled=True):
        vector, eigenvalue = self.power_iteration(compiled=compiled)
        step = self.step_factor / ops.maximum(eigenvalue, _TINY)
        self.power_vector.assign(vector)
        self.step_size.assign(step)
        return step

    def update_step_size(self):
        """Re-runs the power iteration on the current dictionary and stores ``t``; returns ``t``.

        Call it after changing the weights outside training (``set_weights``, loading, after ``fit``).
        """
        return self._fresh_step_size(compiled=False)

    def set_lam(self, value):
        """Sets lambda, e.g. a larger one at test time for noisy inputs (the robust-inference protocol)."""
        self.lam.assign(checks.non_negative_float("lam", value))

    # ----------------------------------------------------------------------------------------------- call
    def call(self, inputs, training=None):
        if training and self.refresh_step_size:
            step = self._fresh_step_size()
        else:
            step = self.step_size
        dtype = inputs.dtype
        step = ops.cast(ops.stop_gradient(step), dtype)
        return fista(
            inputs,
            analysis=self.analysis,
            synthesis=lambda z: self.synthesis(z, output_size=inputs.shape[1:3]),
            step=step,
            threshold=ops.cast(self.lam, dtype) * step,
            n_iter=self.n_iter,
            non_negative=self.non_negative,
        )

    # -------------------------------------------------------------------------------------------- helpers
    def _code_size(self, input_size):
        k, s, p = self.kernel_size, self.strides, self.padding
        return tuple(None if n is None else (int(n) + 2 * p - k) // s + 1 for n in input_size)


def csc_layers(model):
    """Every :class:`CSCConv2D` in ``model`` (nested models included), in layer order."""
    found = []
    for layer in getattr(model, "layers", ()):
        if isinstance(layer, CSCConv2D):
            found.append(layer)
        else:
            found.extend(csc_layers(layer))
    return found


def update_step_sizes(model):
    """Refreshes the step size of every CSC layer of ``model``; returns ``{layer name: t}`` as floats."""
    return {layer.name: float(ops.convert_to_numpy(layer.update_step_size())) for layer in csc_layers(model)}


class RefreshCSCStepSize(keras.callbacks.Callback):
    """Re-runs the power iteration of every CSC layer before each evaluation and at the end of ``fit``.

    During training a :class:`~sparse_keras.layers.CSCConv2D` refreshes its step size itself, in every
    training-mode forward pass, on the dictionary of the previous optimizer step; nothing refreshes it after
    the last step. This callback does, so that validation and the trained model use ``t = 0.9 / L`` of
    the final dictionary (the paper's "fixed during testing").
    """

    def on_test_begin(self, logs=None):
        update_step_sizes(self.model)

    def on_train_end(self, logs=None):
        update_step_sizes(self.model)


def _unit(v):
    return v / ops.maximum(ops.sqrt(ops.sum(ops.square(v))), _TINY)


def _odd_kernel_size(kernel_size):
    if isinstance(kernel_size, (tuple, list)):
        if len(kernel_size) != 2 or kernel_size[0] != kernel_size[1]:
            raise ValueError(f"CSCConv2D atoms are square, got kernel_size={kernel_size!r}")
        kernel_size = kernel_size[0]
    return checks.odd_kernel_size(kernel_size, reason="symmetric padding keeps A and A* adjoint")

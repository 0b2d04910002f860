"""ADMM sparsity training (Kiaee et al. 2016): W-step by the model's optimizer, analytic F-step, dual update.

The problem ``min_W L(W) + mu f(W)`` is split as ``min L(W) + mu f(F)  s.t.  W = F`` and solved by
alternating (eq. 5-7):

* W-step: ordinary training of ``L(W) + rho/2 ||W - U||^2`` with ``U = F - Gamma/rho``; the penalty is a
  regularizer on each sparsified kernel, so ``model.fit`` and custom loops (``sum(model.losses)``) do it;
* F-step: ``F = prox(W + Gamma/rho)`` block by block, group soft thresholding with ``a = mu/rho`` for the
  l1 penalty (eq. 9) or hard thresholding with ``b = sqrt(2 mu/rho)`` for l0 (eq. 10);
* dual update: ``Gamma += rho (W - F)``.

:class:`ADMM` is a ``keras.callbacks.Callback``; its state and steps are
:class:`~sparse_keras.sparsity.admm_algorithm.ADMMAlgorithm`, usable without one. With a float ``mu`` it performs an F-step and dual update
every ``update_every`` epochs, and :meth:`ADMM.finalize` then sets ``W := F`` and installs masks for masked
fine-tuning. With a :class:`~sparse_keras.sparsity.schedules.MuPath` it runs Algorithm 1 by itself: for
each mu, ADMM iterations of ``path.epochs(i)`` epochs until the residuals fall below ``epsilon`` or
``path.max_iterations(i)`` is reached, then ``W := F``, masked fine-tuning for ``path.epochs(i)`` epochs,
a row of :attr:`ADMM.history`, and on to the next mu with F and Gamma carried over (masks lifted).

F and Gamma change outside gradients, so they live in a :class:`~sparse_keras.utils.state.TrainingState`
sublayer of each sparsified layer while the W-step penalty is on: compiled steps receive them as model
state and read them live on every backend (no retrace per update), and ``.keras`` files stay plain models.
"""

import keras

from sparse_keras.sparsity.admm_algorithm import ADMMAlgorithm


class ADMM(keras.callbacks.Callback, ADMMAlgorithm):
    """ADMM sparsity training as a Keras callback; see the module docstring.

    Args:
      penalty: ``"l1"`` (group lasso, soft threshold) or ``"l0"`` (number of blocks, hard threshold).
      mu: sparsity weight, a positive float, a :class:`MuPath`, or per layer (kernel norms differ by an order
        of magnitude between layers): a dict ``{layer name: float}`` naming every sparsified layer, or a
        callable ``layer -> float``. A coupled group takes the mu of its first producing layer.
      rho: augmented-Lagrangian weight (the authors' code: 100).
      block: ``"filter"`` (the paper's 2-D filter W_ij; one output unit for Dense), ``"kernel"`` (a whole
        output kernel), ``"element"``, or ``"coupled"``: the F-step thresholds whole coupled channel groups
        (:func:`sparse_keras.structure.coupled_groups`), the output slices of every kernel producing the
        channel together (e.g. a MobileNet expand conv's channel with the depthwise slice reading it), and
        :meth:`finalize` zeroes every slice of the dead groups (BatchNormalization too) so that
        :func:`sparse_keras.shrink` removes them.
      layers: the layers to sparsify: layer objects, layer names or layer classes (as ``where`` of
        :func:`sparse_keras.regularize`); ``None`` means every Conv/Dense kernel except the classifier.
      update_every: epochs per W-step with a float ``mu`` (a path sets its own, ``path.epochs(i)``).
      epsilon: tolerance of the stopping test (path mode).
      stopping: ``"paper"`` (``||W - F|| <= eps`` and ``||F - F_prev|| <= eps``) or ``"boyd"`` (the authors'
        code: absolute ``epsilon`` and relative 1e-2 tolerances on primal and scaled dual residuals).
      guard: if a layer would lose more than this fraction of its blocks, its threshold becomes the
        layer's mean block norm (the paper's over-pruning guard, 50%); ``None`` disables it.
      normalize_norm_by_size: compare ``||V_b|| / |b|`` with the threshold, as the authors' code does.
      finetune: in path mode, run masked fine-tuning for ``path.epochs(i)`` epochs after each mu.
      prune_bias: at :meth:`finalize`, also zero (and mask) the bias of every output unit whose whole kernel
        is zero, so that the unit is gone rather than a constant and :func:`sparse_keras.shrinking.shrink`
        can remove it.
      sparsity: instead of a threshold from ``mu``, a target: the fraction of each sparsified layer's blocks
        that every F-step zeroes (a float, or ``{layer name: fraction}``), i.e. F is the projection of
        ``W + Gamma/rho`` onto the blocks' cardinality set (Zhang et al. 2018, "A Systematic DNN Weight
        Pruning Framework using ADMM"). ``mu`` and ``guard`` are then unused; needs ``penalty="l0"``.

    When it attaches to a model compiled with SGD, it checks ``learning_rate * rho`` against
    :func:`stability_bound` and raises ``ValueError`` beyond it (:func:`check_optimizer`).
    """

    def __init__(self, penalty="l1", mu=1e-3, rho=100.0, block="filter", layers=None, update_every=1, epsilon=1e-4,
                 stopping="paper", guard=0.5, normalize_norm_by_size=False, finetune=True, prune_bias=True,
                 sparsity=None):
        keras.callbacks.Callback.__init__(self)
        ADMMAlgorithm.__init__(self, penalty=penalty, mu=mu, rho=rho, block=block, layers=layers,
                               update_every=update_every, epsilon=epsilon, stopping=stopping, guard=guard,
                               normalize_norm_by_size=normalize_norm_by_size, finetune=finetune,
                               prune_bias=prune_bias, sparsity=sparsity)

    # The callback's model (keras.callbacks.Callback.model syncs the JAX trainer's state into the variables
    # before ADMM reads them) wins over ADMMAlgorithm's plain attribute through the method resolution order.
    def on_train_begin(self, logs=None):
        self.attach(self.model)

    def on_epoch_end(self, epoch, logs=None):
        self.end_epoch(epoch, logs)

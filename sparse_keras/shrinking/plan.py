"""Deciding which channels of every tensor of a functional model survive shrinking.

The rule that keeps the shrunk model's outputs exactly equal: a channel may go only where it is a constant
(a zero kernel gives its bias; BN and activations map a constant to a constant) and every layer reading it
can absorb that constant (a zero needs nothing; Dense and unpadded convs fold a non-zero constant into their
bias). Channels tied by a layer (an ``Add``'s inputs and output, a BN's input and output, the spatial copies
of a channel in a ``Flatten``) are kept or dropped together: a union-find over every (tensor, channel).

An ``Add`` input that is constant everywhere while another input varies is *detached*: the ``Add`` adds the
constant instead, so the branch computing it disappears (the structured-sparsity paper's vanishing layers: a residual branch
whose every kernel is zero becomes the identity path).
"""

import math

import numpy as np

from sparse_keras.shrinking import registry
from sparse_keras.inspection import graph


class UnionFind:
    """Disjoint sets over ``0..n-1``."""

    def __init__(self, n):
        self.parent = np.arange(n)

    def find(self, i):
        root = i
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[i] != root:  # path compression
            self.parent[i], i = root, self.parent[i]
        return root

    def union(self, a, b):
        for x, y in zip(np.asarray(a).ravel().tolist(), np.asarray(b).ravel().tolist()):
            rx, ry = self.find(x), self.find(y)
            if rx != ry:
                self.parent[rx] = ry

    def roots(self):
        roots = self.parent.copy()
        while True:
            nxt = roots[roots]
            if np.array_equal(nxt, roots):
                return roots
            roots = nxt


class Coupling:
    """The channels of every tensor of a functional model, tied by the layers that read and write them.

    A union-find over every (tensor, channel): each layer's handler ties the channels that must be kept or
    dropped together (:meth:`Handler.couple <sparse_keras.shrinking.registry.Handler.couple>`). Its
    components are the *coupled channel groups* of :func:`sparse_keras.structure.coupled_groups`; the
    shrinking :class:`Plan` adds constants and keep decisions on top of the same ties.

    Args:
      model: a built functional or sequential Keras model.
    """

    def __init__(self, model):
        self.model = model
        self.memo = {}  # per-layer results handlers compute once (e.g. kernel connections)
        self.nodes = [n for n in graph.nodes_in_order(model) if n.input_tensors]
        self._base, self._consumers, self._producer = {}, {}, {}
        total = 0
        for tensor in [*model.inputs, *(t for n in self.nodes for t in n.output_tensors)]:
            if id(tensor) not in self._base:
                self._base[id(tensor)] = total
                total += self.channels(tensor)
        self.total = total
        for node in self.nodes:
            for tensor in node.output_tensors:
                self._producer[id(tensor)] = node
            for position, tensor in enumerate(node.input_tensors):
                self._consumers.setdefault(id(tensor), []).append((node, position))
        self.handlers = {id(n): registry.handler_for(n.operation) for n in self.nodes}
        self._outputs = {id(t) for t in model.outputs}
        self._uf = UnionFind(total)
        for node in self.nodes:
            self.handler(node).couple(node, self)

    def handler(self, node):
        return self.handlers[id(node)]

    @staticmethod
    def channels(tensor):
        dim = tensor.shape[-1] if len(tensor.shape) else None
        if dim is None:
            raise ValueError(f"shrink needs a static last (channel) dimension; tensor {tensor.name!r} has shape {tensor.shape}")
        return int(dim)

    def producer(self, tensor):
        return self._producer.get(id(tensor))

    def consumers(self, tensor):
        return self._consumers.get(id(tensor), [])

    def is_output(self, tensor):
        return id(tensor) in self._outputs

    def tie(self, tensor_a, index_a, tensor_b, index_b):
        """Keeps channel ``index_a[k]`` of ``tensor_a`` iff channel ``index_b[k]`` of ``tensor_b`` is kept."""
        self._uf.union(self.ids(tensor_a)[index_a], self.ids(tensor_b)[index_b])

    def tie_all(self, tensor_a, tensor_b):
        """Ties two tensors of equal width channel by channel."""
        n = self.channels(tensor_a)
        self.tie(tensor_a, np.arange(n), tensor_b, np.arange(n))

    def ids(self, tensor):
        """The union-find ids of the channels of ``tensor``."""
        base = self._base[id(tensor)]
        return np.arange(base, base + self.channels(tensor))

    _ids = ids

    def tensors(self):
        """Every tensor of the graph (model inputs, then node outputs in execution order)."""
        seen, result = set(), []
        for tensor in [*self.model.inputs, *(t for n in self.nodes for t in n.output_tensors)]:
            if id(tensor) not in seen:
                seen.add(id(tensor))
                result.append(tensor)
        return result


class Plan(Coupling):
    """Channels kept per tensor, constants per channel, and detached ``Add`` inputs of one model.

    Args:
      model: a built functional or sequential Keras model.
      effective_weights: ``layer -> {attribute: numpy array}``, the kernels with below-threshold groups zeroed.
      channel_multiple: if set, kernel layers keep a multiple of this many channels where they have enough.
      exact: if False, a constant channel goes even where a reader cannot absorb it exactly (a 'same'-padded
        conv folds it into its bias as if there were no zero border): approximate, for prune-then-fine-tune.
    """

    def __init__(self, model, effective_weights, channel_multiple=None, exact=True):
        super().__init__(model)
        self.effective_weights = effective_weights
        self.exact = bool(exact)
        self._const = {}
        self._find_constants()
        self._keep_roots(self.total, channel_multiple)
        self._detached = self._find_detached()

    # -- queries -----------------------------------------------------------------------------------------
    def const(self, tensor):
        """Constant value of each channel of ``tensor`` (NaN where it varies)."""
        return self._const.get(id(tensor), np.full(self.channels(tensor), np.nan))

    def kept(self, tensor):
        """Sorted indices of the channels of ``tensor`` that the shrunk model computes."""
        return np.flatnonzero(self._kept[self._ids(tensor)])

    def detached(self, node, position):
        return (id(node), position) in self._detached

    def order_free(self, tensor):
        """Whether every reader of ``tensor`` accepts its channels in any order (so a conv producing it may
        emit them grouped by kernel size without restoring the order)."""
        if self.is_output(tensor):
            return False
        for node, position in self.consumers(tensor):
            if self.detached(node, position):
                continue
            order = self.handler(node).order
            if order == "strict" or (order == "same" and not all(self.order_free(t) for t in node.output_tensors)):
                return False
        return True

    # -- building ----------------------------------------------------------------------------------------
    def _find_constants(self):
        for node in self.nodes:
            in_consts = [self.const(t) for t in node.input_tensors]
            outs = self.handler(node).constants(node, in_consts, self)
            for tensor, const in zip(node.output_tensors, outs):
                self._const[id(tensor)] = np.asarray(const, "float64")

    def _keep_roots(self, total, channel_multiple):
        keep = np.zeros(total, bool)
        for key, base in self._base.items():
            const = self._const.get(key)
            if const is None:  # a model input: it varies
                continue
            keep[base : base + len(const)] |= np.isnan(const)
        for tensor in self.model.inputs:
            keep[self._ids(tensor)] = True
        for node in self.nodes:
            for position, tensor in enumerate(node.input_tensors):
                keep[self._ids(tensor)] |= np.asarray(self.handler(node).required(node, position, self), bool)
        for tensor in self.model.outputs:
            keep[self._ids(tensor)] = True
        self._roots = self._uf.roots()
        self._kept_root = np.zeros(total, bool)
        np.logical_or.at(self._kept_root, self._roots, keep)
        self._kept = self._kept_root[self._roots]
        if channel_multiple:
            self._round_up(channel_multiple)

    def _round_up(self, multiple):
        """Keeps extra (constant, hence exact) channels so that each kernel layer emits a multiple of
        ``multiple`` channels, or all of them: vector units and GEMM tiles work in such steps."""
        for node in self.nodes:
            if not self.handler(node).is_kernel:
                continue
            for tensor in node.output_tensors:
                ids = self._ids(tensor)
                kept = self._kept[ids]
                target = min(len(ids), math.ceil(kept.sum() / multiple) * multiple)
                extra = ids[~kept][: target - int(kept.sum())]
                self._kept_root[self._roots[extra]] = True
                self._kept = self._kept_root[self._roots]

    def _find_detached(self):
        detached = set()
        for node in self.nodes:
            if not getattr(self.handler(node), "detaches_constant_inputs", False):
                continue
            constant = [not np.isnan(self.const(t)).any() for t in node.input_tensors]
            if not all(constant):
                detached |= {(id(node), p) for p, c in enumerate(constant) if c}
        return detached

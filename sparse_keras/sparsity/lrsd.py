"""LRSD after training: energy pruning of every ``S``, masked fine-tuning, and the paper's accounting.

The flow of Guo et al. 2019 (section III-D and IV) once a model with LRSD layers
(:mod:`sparse_keras.layers.lrsd`) has been trained from scratch with the l1 penalty on ``S``:

1. :func:`prune_lrsd` keeps, in each ``S`` separately, the fewest entries holding ``alpha`` of its energy
   (eq. 6-7), zeroes the rest and installs masks (the library's one mechanism,
   :func:`sparse_keras.sparsity.masking.install_masks`) so fine-tuning trains only the surviving ``S``
   entries and the dense ``U``, ``V`` and BN.
2. :func:`compression` counts ``N_c`` (``U``, ``V``, BN, biases and only the non-zero ``S`` entries) against
   ``N_o`` (the same network with plain layers), per layer (Fig. 5) and in total (Tables 1-3).
3. :func:`prune_and_finetune` runs evaluate -> prune -> evaluate -> fine-tune -> evaluate and returns one
   :class:`CompressionResult` row; :func:`results_table` writes rows in the layout of the paper's tables.
"""

import dataclasses
import json

import numpy as np
from keras import ops

from sparse_keras.inspection import kernels
from sparse_keras.layers import lrsd as lrsd_layers
from sparse_keras.sparsity import energy, masking
from sparse_keras.utils import tables


def lrsd_layers_of(model):
    """The LRSD layers of ``model`` in model order."""
    return [layer for layer in kernels.iter_layers(model) if lrsd_layers.is_lrsd_layer(layer)]


def prune_lrsd(model, alpha=0.9, keep_l1=False):
    """Energy-prunes every ``S`` of ``model`` at ratio ``alpha`` and masks it for fine-tuning.

    Args:
      model: a built model with LRSD layers.
      alpha: energy ratio kept per layer (eq. 7), in ``[0, 1]``; the paper's default is 0.9.
      keep_l1: keep the l1 penalty on ``S`` during fine-tuning. The paper does not say; off by default
        (our choice; the paper does not say), since the mask already fixes the sparsity pattern.

    Returns:
      ``{variable path of S: keep mask}``; the masks stay installed (``remove_masks`` lifts them).
    """
    alpha = energy.check_alpha(alpha)
    layers = lrsd_layers_of(model)
    if not layers:
        raise ValueError(f"Model {model.name!r} has no LRSD layers to prune (build it with lrsd=True or to_lrsd)")
    if any(not layer.built for layer in layers):
        raise ValueError(f"Model {model.name!r} is not built; call it on data or build(input_shape) first")
    masks = {
        layer.s_kernel.path: energy.energy_ratio_mask(ops.convert_to_numpy(layer.s_kernel), alpha) for layer in layers
    }
    if not keep_l1:
        for layer in layers:  # the config too, so that a saved fine-tuned model reloads without the l1
            layer.s_kernel.regularizer = None
            layer.sparse_regularizer = None
            layer.sparse_l1 = 0.0
    masking.install_masks(model, masks)  # zeroes the pruned entries and retraces the train step
    return masks


@dataclasses.dataclass(frozen=True)
class LayerCompression:
    """One LRSD layer of Fig. 5: parameter counts without BN and bias (the figure's convention)."""

    layer: str
    original: int  # #W, the plain layer's kernel
    low_rank: int  # #L = |U| + |V|
    sparse: int  # #S, non-zero entries of S

    @property
    def low_rank_ratio(self):
        return self.low_rank / self.original

    @property
    def sparse_ratio(self):
        return self.sparse / self.original

    @property
    def ratio(self):
        return (self.low_rank + self.sparse) / self.original


@dataclasses.dataclass(frozen=True)
class Compression:
    """``N_c`` and ``N_o`` of a model (BN and biases included, as in the tables) and its layers."""

    model: str
    compressed: int  # N_c
    original: int  # N_o
    layers: tuple

    @property
    def ratio(self):
        """``N_c / N_o``."""
        return self.compressed / self.original

    def to_markdown(self):
        """The per-layer table behind Fig. 5 and the model totals."""
        header = ["layer", "#W", "#L", "#S", "#L/#W (%)", "#S/#W (%)", "(#L+#S)/#W (%)"]
        rows = [[r.layer, f"{r.original:,}", f"{r.low_rank:,}", f"{r.sparse:,}", f"{100 * r.low_rank_ratio:.2f}",
                 f"{100 * r.sparse_ratio:.2f}", f"{100 * r.ratio:.2f}"] for r in self.layers]
        lines = [f"# LRSD compression of `{self.model}`", "", *tables.markdown_lines(header, rows)]
        totals = f"N_c / N_o = {self.compressed:,} / {self.original:,} = {100 * self.ratio:.2f}%"
        lines += ["", f"{totals} (BN and biases included)."]
        return "\n".join(lines) + "\n"

    def to_dict(self):
        return {
            "model": self.model,
            "compressed": self.compressed,
            "original": self.original,
            "ratio": self.ratio,
            "layers": [dataclasses.asdict(r) for r in self.layers],
        }

    def save(self, prefix):
        """Writes ``prefix.md`` and ``prefix.json`` atomically; returns the paths."""
        return tables.save(prefix, md=self.to_markdown(), json=json.dumps(self.to_dict(), indent=2))


def _size(variable):
    return int(np.prod(variable.shape))


def compression(model, original=None):
    """``N_c`` / ``N_o`` of an LRSD model, counted as the paper does (section IV, Fig. 5 caption).

    ``N_c`` is every trainable parameter of ``model`` (``U``, ``V``, BN scales and shifts, biases, other
    layers) except the zero entries of each ``S``. ``N_o`` is the trainable parameter count of
    ``original`` if given, else of the same network with each LRSD layer replaced by the plain layer of
    ``S``'s shape (with the same bias): what :func:`sparse_keras.convert.to_lrsd` started from. BN moving
    statistics are buffers in the PyTorch original and are not counted.
    """
    if not model.built:
        raise ValueError(f"Model {model.name!r} is not built; call it on data or build(input_shape) first")
    trainable = sum(_size(v) for v in model.trainable_weights)
    layers, zeros, extra = [], 0, 0
    for layer in lrsd_layers_of(model):
        s = ops.convert_to_numpy(layer.s_kernel)
        nnz = int(np.count_nonzero(s))
        low_rank = 0 if layer.sparse_only else _size(layer.v_kernel) + _size(layer.u_kernel)
        layers.append(LayerCompression(layer.name, s.size, low_rank, nnz))
        zeros += s.size - nnz
        bn = 0 if layer.low_rank_bn is None else sum(_size(v) for v in layer.low_rank_bn.trainable_weights)
        extra += low_rank + bn  # what the LRSD layer has beyond the plain layer's kernel (+ bias)
    n_o = trainable - extra if original is None else sum(_size(v) for v in original.trainable_weights)
    return Compression(model.name, trainable - zeros, n_o, tuple(layers))


@dataclasses.dataclass(frozen=True)
class CompressionResult:
    """One row of the paper's Tables 1-3 and 5: accuracies in percent, ``N_c/N_o`` from :class:`Compression`."""

    model: str
    dataset: str
    method: str
    baseline_accuracy: float | None  # the plain network's accuracy, shown in the model column
    original_params: int
    compressed_params: int
    dense_accuracy: float | None  # the trained LRSD model before pruning
    pruned_accuracy: float | None
    finetuned_accuracy: float | None

    @property
    def ratio(self):
        return self.compressed_params / self.original_params


def _percent(value):
    return "–" if value is None else f"{value:.2f}"


def results_table(results):
    """Markdown in the layout of the paper's Tables 1-3: one block per (model, dataset).

    Columns: N_c/N_o (%), accuracy of the dense LRSD model (Table 5's extra column), of the pruned model
    and of the fine-tuned model.
    """
    header = ["Model", "Method", "N_c/N_o (%)", "Dense model (%)", "Pruned model (%)", "Fine-tuned model (%)"]
    rows = []
    for r in results:
        params = f"{r.original_params / 1e6:.2f}M"
        head = f"{r.model} on {r.dataset} (Acc.: {_percent(r.baseline_accuracy)}%, Param.: {params})"
        rows.append([head, r.method, f"{100 * r.ratio:.2f}", _percent(r.dense_accuracy), _percent(r.pruned_accuracy),
                     _percent(r.finetuned_accuracy)])
    return tables.markdown(header, rows)


def prune_and_finetune(
    model, evaluate, finetune=None, alpha=0.9, dataset="", method="LRSD", baseline_accuracy=None, original=None
):
    """The post-training stage of LRSD: evaluate, prune at ``alpha``, evaluate, fine-tune, evaluate.

    Args:
      model: a trained model with LRSD layers (changed in place; masks stay installed).
      evaluate: ``model -> accuracy`` as a fraction or percent (values <= 1 are read as fractions).
      finetune: ``model -> None`` training the pruned model (e.g. ``model.fit`` with the paper's schedule);
        ``None`` skips fine-tuning.
      alpha: energy ratio of :func:`prune_lrsd`.
      dataset, method, baseline_accuracy: labels of the table row.
      original: the plain network for ``N_o`` (see :func:`compression`).

    Returns:
      ``(CompressionResult, Compression)``; the second has the per-layer Fig. 5 numbers.
    """
    dense = _as_percent(evaluate(model))
    prune_lrsd(model, alpha)
    pruned = _as_percent(evaluate(model))
    finetuned = None
    if finetune is not None:
        finetune(model)
        finetuned = _as_percent(evaluate(model))
    counts = compression(model, original)
    result = CompressionResult(
        model.name, dataset, method, baseline_accuracy, counts.original, counts.compressed, dense, pruned, finetuned
    )
    return result, counts


def _as_percent(value):
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"evaluate returned a non-finite accuracy {value!r}")
    return 100.0 * value if value <= 1.0 else value

"""Pictures of what sparsity learned: architectures, training curves, LRSD ratios, the efficient frontier.

Each function draws one figure and writes it with :func:`sparse_keras.reports.figures.save_figure`.
"""

import math
import statistics

import numpy as np

from sparse_keras.reports import frontier
from sparse_keras.reports.figures import pyplot, save_figure


def plot_architecture(reports, path, title=None):
    """Draws what a model learned, layer by layer (the structured-sparsity paper Fig. 1 and Fig. 3), as horizontal bars.

    Left panel: the share of each layer's output kernels kept (learned width ``d_i`` over base width), one
    bar per report, labelled ``kept/base``; shares rather than counts, so that one very wide layer does not
    flatten all others. Then one panel per report: the share of each layer's kept kernels of each learned
    size. Layers read top to bottom in model order; the figure grows with the number of layers, so that
    models of 50+ layers keep legible labels.

    Args:
      reports: an :class:`sparse_keras.analysis.ArchitectureReport`, or a mapping ``label -> report``
        (e.g. one per regularization weight alpha) drawn as a family.
      path: the PNG file to write.
      title: optional figure title.

    Returns:
      ``path``.
    """
    if hasattr(reports, "layers"):
        reports = {reports.model: reports}
    reports = dict(reports)
    if not reports:
        raise ValueError(f"plot_architecture needs at least one report, got reports={reports!r}")
    plt = pyplot()
    first = next(iter(reports.values()))
    names = [r.layer for r in first.layers]
    rows = len(names)
    height = 1.8 + rows * (0.18 + 0.06 * len(reports))
    fig, axes = plt.subplots(1, 1 + len(reports), figsize=(6.0 + 4.0 * len(reports), height), sharey=True,
                             squeeze=False, gridspec_kw={"width_ratios": [1.4] + [1.0] * len(reports)})
    fontsize = 8 if rows <= 30 else 7
    _plot_kept_widths(axes[0, 0], reports, names, fontsize)
    # One colour per kernel size across all panels.
    sizes = sorted({s for rep in reports.values() for r in rep.layers for s in r.sizes})
    for ax, (label, rep) in zip(axes[0, 1:], reports.items()):
        _plot_kernel_sizes(ax, rep, label, sizes)
    axes[0, 0].set_yticks(range(rows), names, fontsize=fontsize)
    axes[0, 0].set_ylim(rows - 0.5, -0.5)  # first layer on top, no empty margin
    fig.tight_layout()
    # Above the figure's top edge, so that it never overlaps the panel titles; the tight bounding box of
    # save_figure takes it in.
    fig.suptitle(title or f"Learned architecture of {first.model}: {rows} layers", fontsize=10, y=1.0, va="bottom")
    return save_figure(fig, path, tight=False)


def plot_training(history, path, title=None):
    """Test accuracy and the share of multiply-adds left, epoch by epoch across a run's stages.

    Args:
      history: rows in epoch order, each a mapping with ``epoch`` (counted over the whole run), ``stage``,
        ``test_accuracy``, ``macs`` and ``base_macs`` (what the training binary keeps in ``history.json``).
      path: the PNG file to write.
      title: optional figure title.

    Returns:
      ``path``.
    """
    rows = list(history)
    if not rows:
        raise ValueError("plot_training needs at least one epoch, got an empty history")
    plt = pyplot()
    epochs = [r["epoch"] for r in rows]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7.0, 5.0), sharex=True)
    top.plot(epochs, [100 * r["test_accuracy"] for r in rows], "o-", color="tab:blue", label="test accuracy")
    bottom.plot(epochs, [100 * r["macs"] / max(r["base_macs"], 1) for r in rows], "s-", color="tab:red",
                label="multiply-adds left (zero structures skipped)")
    top.set_ylabel("test accuracy (%)")
    bottom.set_ylabel("multiply-adds left (%)")
    bottom.set_ylim(0, 105)
    bottom.set_xlabel("epoch (whole run)")
    # Each stage as a shaded span named at the top, so the effect of a transition (ADMM's W := F, masks) shows.
    start = 0
    for index, stage in enumerate(_stage_runs(rows)):
        name, count = stage
        for ax in (top, bottom):
            ax.axvspan(start + 0.5, start + count + 0.5, color="0.92" if index % 2 else "0.97", zorder=0)
        top.text(start + 0.5 + count / 2, 1.02, name, transform=top.get_xaxis_transform(), ha="center",
                 va="bottom", fontsize=8)
        start += count
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left", fontsize=8)
    bottom.set_xticks(epochs)
    fig.suptitle(title or "Training, epoch by epoch", fontsize=10, y=1.0, va="bottom")
    fig.tight_layout()
    return save_figure(fig, path, tight=False)


def _stage_runs(rows):
    """``[(stage, number of consecutive epochs)]`` in order."""
    runs = []
    for r in rows:
        if runs and runs[-1][0] == r["stage"]:
            runs[-1] = (r["stage"], runs[-1][1] + 1)
        else:
            runs.append((r["stage"], 1))
    return runs


def _plot_kept_widths(ax, reports, names, fontsize):
    count = len(reports)
    height = 0.8 / count
    for index, (label, rep) in enumerate(reports.items()):
        positions = [y - 0.4 + height * (index + 0.5) for y in range(len(names))]
        shares = [100.0 * r.width / r.base_width if r.base_width else 0.0 for r in rep.layers]
        ax.barh(positions, shares, height=height, color=f"C{index}", label=str(label))
        if count <= 3:  # beyond that the numbers would overlap; the bars still tell
            for y, r, share in zip(positions, rep.layers, shares):
                ax.text(min(share, 100) + 1, y, f"{r.width}/{r.base_width}", va="center", fontsize=fontsize - 1)
    ax.set_xlim(0, 118)
    ax.set_xticks([0, 25, 50, 75, 100])
    ax.set_xlabel("output kernels kept (% of the base width; labels: kept/base)")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title("Learned width d_i per layer", fontsize=9)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, _below_axes(ax)),
              title="model / report", title_fontsize=7)


def _below_axes(ax):
    """The legend anchor (axes fraction) about 0.65 inch under the axes: below the tick labels and x label."""
    return -0.65 / max(0.5, ax.figure.get_figheight() - 1.3)


def _plot_kernel_sizes(ax, rep, label, all_sizes):
    left = [0.0] * len(rep.layers)
    for index, size in enumerate(all_sizes):
        shares = [100.0 * r.sizes.get(size, 0) / max(1, sum(r.sizes.values())) for r in rep.layers]
        ax.barh(range(len(rep.layers)), shares, left=left, height=0.8, color=f"C{index}", label=f"{size}x{size}")
        left = [a + b for a, b in zip(left, shares)]
    ax.set_xlim(0, 100)
    ax.set_xlabel("kept kernels of each size (% of the layer's kernels)")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(f"Kernel sizes per layer ({label})", fontsize=9)
    if all_sizes:
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, _below_axes(ax)),
                  ncol=min(len(all_sizes), 6), title="learned kernel size", title_fontsize=7)


# ----------------------------------------------------------------- LRSD (Guo et al. 2019, Fig. 5)
def plot_layer_ratios(counts, path, title=None):
    """Fig. 5 as a PNG: per LRSD layer, #L/#W, #S/#W and (#L+#S)/#W in percent. Returns ``path``."""
    plt = pyplot()
    names = [r.layer for r in counts.layers]
    x = np.arange(len(names))
    fig, axes = plt.subplots(3, 1, figsize=(max(6, 0.4 * len(names)), 8), sharex=True)
    series = (
        ("#L/#W", [r.low_rank_ratio for r in counts.layers]),
        ("#S/#W", [r.sparse_ratio for r in counts.layers]),
        ("(#L+#S)/#W", [r.ratio for r in counts.layers]),
    )
    for ax, (label, values) in zip(axes, series):
        ax.bar(x, 100 * np.asarray(values))
        ax.set_ylabel(f"{label} (%)")
    axes[-1].set_xticks(x, names, rotation=90)
    fig.suptitle(title or f"{counts.model}: N_c/N_o = {100 * counts.ratio:.2f}%")
    return save_figure(fig, path)


# ------------------------------------------------- the efficient frontier (the structured-sparsity paper)
ALPHA_MARKERS = "osD^vP*Xhp"


def plot_frontier(points, path, latency_batch=None, title=None):
    """Accuracy vs multiply-adds (left) and vs measured latency at ``latency_batch`` (right; default the
    smallest batch measured; the panel is left out when no point has a latency).

    One colour per learned series, one marker shape per alpha (both explained in the legends); with several
    seeds each marker is the mean over seeds and its bars the range. Uniform baselines are grey crosses, the
    dense base a black star."""
    if not points:
        raise ValueError("plot_frontier needs at least one point")
    batches = sorted({b for p in points for b in p.latency_ms})
    batch = latency_batch if latency_batch is not None else (batches[0] if batches else None)
    panels = [(lambda p: p.deployed_macs / 1e6, "multiply-adds per image of the exported model (millions, log scale)")]
    if batch is not None:
        panels.append((lambda p: p.latency_ms.get(batch, math.nan), f"measured latency (ms per batch of {batch}, log scale)"))
    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels), 7), squeeze=False)
    labels = list(dict.fromkeys(p.label for p in points if p.kind == "learned"))
    alphas = sorted({p.alpha for p in points if p.kind == "learned" and p.alpha is not None})
    seeds = list(dict.fromkeys(p.seed for p in points if p.seed is not None))
    for ax, (x_of, xlabel) in zip(axes[0], panels):
        for index, label in enumerate(labels):
            means = []
            for alpha in alphas:
                runs = [p for p in points if p.kind == "learned" and p.label == label and p.alpha == alpha]
                if runs:
                    means.append(_errorbar(ax, runs, x_of, dict(color=f"C{index}", marker=_alpha_marker(alphas, alpha))))
            means.sort()
            ax.plot([m[0] for m in means], [m[1] for m in means], "-", color=f"C{index}", alpha=0.6,
                    label=_series_name(label))
        uniform = [p for p in points if p.kind == "uniform"]
        if uniform:
            ax.plot([x_of(p) for p in uniform], [100 * p.accuracy for p in uniform], "x", color="grey", markersize=7,
                    label="uniformly thinned base (every width scaled)")
        dense = [p for p in points if p.kind == "dense"]
        if dense:
            _errorbar(ax, dense, x_of, dict(color="black", marker="*", markersize=14))
            ax.plot([], [], "k*", markersize=12, label="dense base")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(_plain_ticks())
        ax.xaxis.set_minor_formatter(_plain_ticks(minor=True))
        ax.tick_params(axis="x", which="minor", labelsize=7)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3, which="both")
        if alphas:  # drawn first and kept as an extra artist: ax.legend below replaces the axes' legend
            handles = [plt.Line2D([], [], color="dimgrey", marker=_alpha_marker(alphas, a), linestyle="") for a in alphas]
            ax.add_artist(ax.legend(handles, [f"alpha = {a:.3g}" for a in alphas], fontsize=7, loc="upper left",
                                    title="regularization weight", title_fontsize=7))
        # Below the axes, where it hides no point; save_figure's tight bounding box keeps it in the image.
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), title="series", title_fontsize=7)
    spread = f"\nmarkers: mean of {len(seeds)} seeds, bars: min to max" if len(seeds) > 1 else ""
    fig.suptitle((title or "Accuracy against cost") + spread, fontsize=10)
    return save_figure(fig, path)


def _series_name(label):
    base = label[: -len(frontier.RETRAINED)] if label.endswith(frontier.RETRAINED) else label
    how = "architecture retrained from scratch" if label.endswith(frontier.RETRAINED) else "regularized, thresholded, fine-tuned"
    return f"learned with {base}: {how}"


def _alpha_marker(alphas, alpha):
    return ALPHA_MARKERS[alphas.index(alpha) % len(ALPHA_MARKERS)]


def _errorbar(ax, runs, x_of, style):
    """Draws the mean of ``runs`` (accuracy in %) with min-max bars in both directions; returns the mean."""
    xs, ys = [x_of(p) for p in runs], [100 * p.accuracy for p in runs]
    x, y = statistics.fmean(xs), statistics.fmean(ys)
    ax.errorbar([x], [y], xerr=[[x - min(xs)], [max(xs) - x]], yerr=[[y - min(ys)], [max(ys) - y]],
                linestyle="", capsize=2, elinewidth=0.8, **style)
    return x, y


def _plain_ticks(minor=False):
    """Log-axis tick labels as plain numbers (0.5, 1, 2, 5), the minor ones only at 2 and 5 to avoid overlap."""
    import matplotlib.ticker

    def label(value, _):
        mantissa = value / 10 ** math.floor(math.log10(value))
        if minor and round(mantissa) not in (2, 5):
            return ""
        return f"{value:g}"

    return matplotlib.ticker.FuncFormatter(label)


def _learned(points):
    learned = [p for p in points if p.kind == "learned" and p.layers]
    if not learned:
        raise ValueError("family plots need at least one learned point with its per-layer architecture")
    return learned


def plot_width_family(points, path, title=None):
    """The structured-sparsity paper's Fig. 1: learned width ``d_i`` per layer, one bar per alpha beside the others, the base
    width as a grey outline behind them. Horizontal bars, so that 50+ layers stay legible."""
    learned = _learned(points)
    plt = pyplot()
    names = [row["layer"] for row in learned[0].layers]
    fig, ax = plt.subplots(figsize=(7.5, 1.5 + len(names) * (0.15 + 0.07 * len(learned))))
    positions = list(range(len(names)))
    ax.barh(positions, [row["base_width"] for row in learned[0].layers], height=0.9, color="none",
            edgecolor="grey", linewidth=1.0, label="base width (before sparsity)")
    height = 0.8 / len(learned)
    for index, p in enumerate(learned):
        offsets = [y - 0.4 + height * (index + 0.5) for y in positions]
        ax.barh(offsets, [row["width"] for row in p.layers], height=height, color=f"C{index}",
                label=f"learned, {p.label}, alpha = {p.alpha:.3g}")
    ax.set_yticks(positions, names, fontsize=7 if len(names) < 40 else 6)
    ax.invert_yaxis()  # first layer on top, as the network reads
    ax.set_xlabel("output channels d_i (kernels kept)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.6 / fig.get_figheight()))
    ax.set_title(title or "Learned width per layer for each alpha (the structured-sparsity paper Fig. 1)", fontsize=10)
    return save_figure(fig, path)


def plot_size_family(points, path, title=None):
    """The structured-sparsity paper's Fig. 3: one panel per kernel size s, the number of kernels of size s per layer for each alpha."""
    learned = _learned(points)
    sizes = sorted({int(s) for p in learned for row in p.layers for s in row["sizes"]})
    if not sizes:
        raise ValueError("plot_size_family: no layer of the learned points has square kernels")
    plt = pyplot()
    names = [row["layer"] for row in learned[0].layers]
    positions = list(range(len(names)))
    fig, axes = plt.subplots(len(sizes), 1, figsize=(max(6.0, 0.4 * len(names) + 2), 2.4 * len(sizes)), squeeze=False)
    for ax, size in zip(axes[:, 0], sizes):
        for p in learned:
            counts = [row["sizes"].get(str(size), row["sizes"].get(size, 0)) for row in p.layers]
            ax.plot(positions, counts, marker=".", label=f"{p.label}, alpha={p.alpha:.2g}")
        ax.set_ylabel(f"kernels {size}x{size}")
        ax.set_xticks(positions, names, rotation=60, ha="right", fontsize=7)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(title or "Kernels of each size per layer for each alpha (the structured-sparsity paper Fig. 3)")
    return save_figure(fig, path)

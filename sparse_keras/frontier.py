"""The efficient frontier of the structured-sparsity paper: one point per regularization weight alpha, and its baselines.

A :class:`FrontierPoint` is one trained network with its accuracy and its costs (parameters, multiply-adds
of eq. 10, measured latency) and, for learned points, the architecture it learned (width and kernel-size
histogram per layer). This module turns a list of them into the sweep's outputs:

* :func:`write_table`: one row per point, ``.md``, ``.csv`` and ``.json``;
* :func:`compare_with_uniform` / :func:`write_comparison`: each learned architecture against the uniformly
  thinned base of the same multiply-adds, per seed and averaged;
* :func:`plot_frontier`: accuracy against multiply-adds and against measured latency, the dense base
  architecture and the uniformly thinned baselines marked;
* :func:`plot_width_family` (the structured-sparsity paper Fig. 1): learned width per layer, one curve per alpha;
* :func:`plot_size_family` (the structured-sparsity paper Fig. 3): number of kernels of each size per layer, one panel per size;
* :func:`match_width_multiplier`: the uniform thinning factor whose network costs given multiply-adds.
"""

import csv
import dataclasses
import io as _io
import json
import math
import statistics

from sparse_keras import io
from sparse_keras import visualize

KINDS = ("learned", "uniform", "dense")
RETRAINED = ", retrained"  # suffix of the label of a learned architecture trained again from scratch


@dataclasses.dataclass
class FrontierPoint:
    """One network on the frontier. ``layers``: ``[{"layer", "base_width", "width", "sizes"}]`` (learned)."""

    kind: str  # "learned" (a point of the alpha sweep), "uniform" (thinned base) or "dense" (the base)
    label: str  # the series it belongs to, e.g. "Omega_1+Omega_2" or "Omega_3"
    alpha: float | None
    accuracy: float
    params: int
    macs: int  # eq. 10 multiply-adds of the learned architecture (what thresholding leaves, read layer by layer)
    deployed_macs: int  # multiply-adds of the exported (shrunk) model: dead-end layers gone, sizes as deployed
    latency_ms: dict  # {batch size: median milliseconds per batch}
    depth: int  # conv layers left in the exported model
    width_multiplier: float | None = None
    layers: list = dataclasses.field(default_factory=list)
    workdir: str = ""
    seed: int | None = None  # the run's random seed, when a sweep repeats every point over several
    twin_of: str = ""  # uniform points: the label of the learned series whose multiply-adds they match

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"FrontierPoint.kind must be one of {KINDS}, got kind={self.kind!r}")
        self.latency_ms = {int(k): float(v) for k, v in self.latency_ms.items()}

    @property
    def widths(self):
        return [row["width"] for row in self.layers]

    @property
    def sizes(self):
        """Per layer, ``"size:count"`` pairs joined by spaces (``-`` for a layer without square kernels)."""
        return [" ".join(f"{s}:{n}" for s, n in sorted((int(s), n) for s, n in row["sizes"].items())) or "-"
                for row in self.layers]


def to_json(points):
    return json.dumps([dataclasses.asdict(p) for p in points], indent=2)


def from_json(text):
    return [FrontierPoint(**d) for d in json.loads(text)]


def write_table(points, prefix):
    """Writes ``prefix.md``, ``prefix.csv`` and ``prefix.json`` (one row per point); returns the paths."""
    batches = sorted({b for p in points for b in p.latency_ms})
    seeded = any(p.seed is not None for p in points)
    header = [*(["seed"] if seeded else []), "kind", "label", "alpha", "accuracy", "params", "macs", "deployed_macs",
              *[f"latency_ms_b{b}" for b in batches], "depth", "width_multiplier", "widths", "sizes"]
    rows = []
    for p in points:
        rows.append([*([("" if p.seed is None else str(p.seed))] if seeded else []),
                     p.kind, p.label, "" if p.alpha is None else f"{p.alpha:.3g}", f"{p.accuracy:.4f}", p.params,
                     p.macs, p.deployed_macs, *[f"{p.latency_ms[b]:.3f}" if b in p.latency_ms else "" for b in batches],
                     p.depth, "" if p.width_multiplier is None else f"{p.width_multiplier:.3f}",
                     " ".join(map(str, p.widths)), " | ".join(p.sizes)])
    out = _io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    md = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    md += ["| " + " | ".join(f"{v:,}" if isinstance(v, int) else str(v) for v in row) + " |" for row in rows]
    paths = {ext: f"{prefix}.{ext}" for ext in ("md", "csv", "json")}
    io.write_text(paths["md"], "\n".join(md) + "\n")
    io.write_text(paths["csv"], out.getvalue())
    io.write_text(paths["json"], to_json(points))
    return paths


def compare_with_uniform(points):
    """Seed 004's claim put to the test: each learned architecture against the uniformly thinned base of the
    same multiply-adds (its twin: same seed, same alpha, ``twin_of`` naming the learned series).

    Returns one dict per learned point that has a twin (the regularized run's weights and, where the sweep
    retrained it, the same architecture from scratch are both compared): ``seed``, ``label``, ``alpha``, the
    two accuracies and their difference (learned minus uniform, in points), both exported multiply-adds,
    ``latency_ratio`` (uniform / learned per batch size: above 1 means the learned one is faster) and ``wins``:
    more accurate *and* measured faster at every batch size timed.
    """
    twins = {(p.seed, p.alpha, p.twin_of): p for p in points if p.kind == "uniform" and p.twin_of}
    pairs = []
    for p in points:
        if p.kind != "learned":
            continue
        twin = twins.get((p.seed, p.alpha, p.label.removesuffix(RETRAINED)))
        if twin is None:
            continue
        ratio = {b: twin.latency_ms[b] / p.latency_ms[b] for b in sorted(p.latency_ms) if b in twin.latency_ms
                 and p.latency_ms[b] > 0}
        pairs.append({
            "seed": p.seed, "label": p.label, "alpha": p.alpha,
            "accuracy": p.accuracy, "uniform_accuracy": twin.accuracy,
            "accuracy_gain": 100.0 * (p.accuracy - twin.accuracy),
            "deployed_macs": p.deployed_macs, "uniform_macs": twin.deployed_macs,
            "latency_ratio": ratio,
            "wins": bool(ratio) and p.accuracy > twin.accuracy and all(r > 1.0 for r in ratio.values()),
        })
    return pairs


def write_comparison(points, path):
    """Writes :func:`compare_with_uniform` as markdown: one row per pair, then per series and alpha the mean
    and spread over seeds. Returns the pairs (an empty list writes nothing)."""
    pairs = compare_with_uniform(points)
    if not pairs:
        return pairs
    batches = sorted({b for pair in pairs for b in pair["latency_ratio"]})
    lines = ["| seed | learned | alpha | accuracy | uniform twin | gain (points) | MACs learned / twin | "
             + " | ".join(f"speed vs twin b{b}" for b in batches) + " | more accurate and faster |",
             "|---|---|---|---:|---:|---:|---|" + "---:|" * len(batches) + "---|"]
    for pair in pairs:
        lines.append(
            f"| {'' if pair['seed'] is None else pair['seed']} | {pair['label']} | {pair['alpha']:.3g} | "
            f"{pair['accuracy']:.4f} | {pair['uniform_accuracy']:.4f} | {pair['accuracy_gain']:+.2f} | "
            f"{pair['deployed_macs']:,} / {pair['uniform_macs']:,} | "
            + " | ".join(f"{pair['latency_ratio'][b]:.2f}x" if b in pair["latency_ratio"] else "" for b in batches)
            + f" | {'yes' if pair['wins'] else 'no'} |")
    lines += ["", "| learned | alpha | runs | gain mean (points) | gain min / max | "
              + " | ".join(f"speed b{b} mean" for b in batches) + " | wins |",
              "|---|---|---:|---:|---|" + "---:|" * len(batches) + "---:|"]
    groups = {}
    for pair in pairs:
        groups.setdefault((pair["label"], pair["alpha"]), []).append(pair)
    for (label, alpha), group in groups.items():
        gains = [g["accuracy_gain"] for g in group]
        speeds = [statistics.fmean(g["latency_ratio"][b] for g in group if b in g["latency_ratio"]) for b in batches]
        lines.append(f"| {label} | {alpha:.3g} | {len(group)} | {statistics.fmean(gains):+.2f} | "
                     f"{min(gains):+.2f} / {max(gains):+.2f} | " + " | ".join(f"{v:.2f}x" for v in speeds)
                     + f" | {sum(g['wins'] for g in group)}/{len(group)} |")
    io.write_text(path, "\n".join(lines) + "\n")
    return pairs


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
    plt = visualize.pyplot()
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
    return visualize.save_figure(fig, path)


def _series_name(label):
    base = label[: -len(RETRAINED)] if label.endswith(RETRAINED) else label
    how = "architecture retrained from scratch" if label.endswith(RETRAINED) else "regularized, thresholded, fine-tuned"
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
    """Seed 004 Fig. 1: learned width ``d_i`` per layer, one bar per alpha beside the others, the base
    width as a grey outline behind them. Horizontal bars, so that 50+ layers stay legible."""
    learned = _learned(points)
    plt = visualize.pyplot()
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
    return visualize.save_figure(fig, path)


def plot_size_family(points, path, title=None):
    """Seed 004 Fig. 3: one panel per kernel size s, the number of kernels of size s per layer for each alpha."""
    learned = _learned(points)
    sizes = sorted({int(s) for p in learned for row in p.layers for s in row["sizes"]})
    if not sizes:
        raise ValueError("plot_size_family: no layer of the learned points has square kernels")
    plt = visualize.pyplot()
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
    return visualize.save_figure(fig, path)


def match_width_multiplier(macs_of, target_macs, low=1e-3, high=1.0, iterations=30):
    """The width multiplier ``f`` in ``[low, high]`` whose network's multiply-adds are closest to ``target_macs``.

    ``macs_of(f)`` returns the multiply-adds of the base architecture with every width scaled by ``f``; it
    must grow with ``f`` (widths are rounded, so it is a staircase). Bisection, then the closer of the two
    ends. Raises ``ValueError`` if ``target_macs`` lies outside ``[macs_of(low), macs_of(high)]``.
    """
    if not (isinstance(target_macs, (int, float)) and target_macs > 0):
        raise ValueError(f"target_macs must be a positive number, got target_macs={target_macs!r}")
    lo_macs, hi_macs = macs_of(low), macs_of(high)
    if not lo_macs <= target_macs <= hi_macs:
        raise ValueError(f"target_macs={target_macs:,} is outside what thinning reaches: [{lo_macs:,}, {hi_macs:,}]")
    for _ in range(iterations):
        mid = (low + high) / 2
        if macs_of(mid) < target_macs:
            low = mid
        else:
            high = mid
    return min((low, high), key=lambda f: abs(macs_of(f) - target_macs))

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

import dataclasses
import json
import statistics

from sparse_keras.utils import files, tables

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
    md_rows = [[f"{v:,}" if isinstance(v, int) else v for v in row] for row in rows]
    return tables.save(prefix, md=tables.markdown(header, md_rows), csv=tables.csv_text(header, rows), json=to_json(points))


def compare_with_uniform(points):
    """The structured-sparsity paper's claim put to the test: each learned architecture against the uniformly thinned base of the
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
    speeds = [f"speed vs twin b{b}" for b in batches]
    header = ["seed", "learned", "alpha", "accuracy", "uniform twin", "gain (points)", "MACs learned / twin", *speeds,
              "more accurate and faster"]
    align = ["left"] * 3 + ["right"] * 3 + ["left"] + ["right"] * len(batches) + ["left"]
    rows = [["" if pair["seed"] is None else pair["seed"], pair["label"], f"{pair['alpha']:.3g}", f"{pair['accuracy']:.4f}",
             f"{pair['uniform_accuracy']:.4f}", f"{pair['accuracy_gain']:+.2f}",
             f"{pair['deployed_macs']:,} / {pair['uniform_macs']:,}",
             *[f"{pair['latency_ratio'][b]:.2f}x" if b in pair["latency_ratio"] else "" for b in batches],
             "yes" if pair["wins"] else "no"] for pair in pairs]
    lines = tables.markdown_lines(header, rows, align)
    groups = {}
    for pair in pairs:
        groups.setdefault((pair["label"], pair["alpha"]), []).append(pair)
    header = ["learned", "alpha", "runs", "gain mean (points)", "gain min / max", *[f"speed b{b} mean" for b in batches], "wins"]
    align = ["left", "left", "right", "right", "left"] + ["right"] * (len(batches) + 1)
    rows = []
    for (label, alpha), group in groups.items():
        gains = [g["accuracy_gain"] for g in group]
        speed = [statistics.fmean(g["latency_ratio"][b] for g in group if b in g["latency_ratio"]) for b in batches]
        rows.append([label, f"{alpha:.3g}", len(group), f"{statistics.fmean(gains):+.2f}", f"{min(gains):+.2f} / {max(gains):+.2f}",
                     *[f"{v:.2f}x" for v in speed], f"{sum(g['wins'] for g in group)}/{len(group)}"])
    lines += ["", *tables.markdown_lines(header, rows, align)]
    files.write_text(path, "\n".join(lines) + "\n")
    return pairs


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

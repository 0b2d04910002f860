"""Pictures of what sparsity learned (PNG, written atomically; matplotlib is imported on first use)."""

from sparse_keras import io


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend (imported on first use, never at import time)."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    return plt


def plot_architecture(reports, path, title=None):
    """Draws learned widths per layer and kernel-size histograms per layer (seed 004 Fig. 1 and Fig. 3).

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
        raise ValueError("plot_architecture needs at least one report")
    plt = pyplot()
    first = next(iter(reports.values()))
    names = [r.layer for r in first.layers]
    fig, axes = plt.subplots(
        1 + len(reports), 1, figsize=(max(6.0, 0.45 * len(names) + 2), 3.2 * (1 + len(reports))), squeeze=False
    )
    widths = axes[0, 0]
    positions = range(len(names))
    widths.plot(positions, [r.base_width for r in first.layers], "k--", label="base width")
    for label, rep in reports.items():
        widths.plot(positions, [r.width for r in rep.layers], marker="o", label=str(label))
    widths.set_ylabel("kernels per layer")
    widths.set_title("Learned width d_i per layer")
    widths.set_xticks(list(positions), names, rotation=60, ha="right", fontsize=7)
    widths.legend(fontsize=7)

    for ax, (label, rep) in zip(axes[1:, 0], reports.items()):
        all_sizes = sorted({s for r in rep.layers for s in r.sizes})
        bottom = [0] * len(rep.layers)
        for size in all_sizes:
            counts = [r.sizes.get(size, 0) for r in rep.layers]
            ax.bar(list(positions), counts, bottom=bottom, label=f"{size}x{size}")
            bottom = [b + c for b, c in zip(bottom, counts)]
        ax.set_ylabel("kernels")
        ax.set_title(f"Kernel sizes per layer ({label})")
        ax.set_xticks(list(positions), names, rotation=60, ha="right", fontsize=7)
        if all_sizes:
            ax.legend(fontsize=7, ncol=min(len(all_sizes), 8))
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def save_figure(fig, path):
    """Writes ``fig`` to ``path`` as PNG atomically and closes it; returns ``path``."""
    fig.tight_layout()
    try:
        with io.atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=110)
    finally:
        pyplot().close(fig)
    return path

"""Pictures of what sparsity learned (PNG, written atomically; matplotlib is imported on first use)."""

from sparse_keras import io


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend (imported on first use, never at import time)."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    return plt


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


def save_figure(fig, path, tight=True):
    """Writes ``fig`` to ``path`` as PNG atomically and closes it; returns ``path``.

    ``tight=False`` for figures whose layout matplotlib cannot tighten (a colour bar spanning subplots).
    """
    if tight:
        fig.tight_layout()
    try:
        with io.atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")  # legends placed outside the axes stay in
    finally:
        pyplot().close(fig)
    return path


# --------------------------------------------------------------------- CSC layers (SDNet, Dai et al. 2022 B-D)
def reconstruct_input(model, layer_name, x, path=None):
    """Reconstructs the input image from the code of a CSC layer (Dai et al. 2022 eq. B.2-B.3, Fig. B.1).

    ``z_l`` is the output of the CSC layer ``layer_name`` on ``x``; the reconstruction applies the
    dictionaries of that layer and of every CSC layer before it, last to first:
    ``x~ = A_1(A_2(... A_l(z_l)))``. What lies between the CSC layers (BN, ReLU, shortcuts) is skipped, as
    in the paper's eq. B.3: the picture shows what the sparse codes explain.

    Args:
      model: a built model containing :class:`~sparse_keras.layers.CSCConv2D` layers.
      layer_name: name of one of its CSC layers.
      x: a batch of inputs, ``(n, height, width, channels)``.
      path: optional PNG to write (inputs on the first row, reconstructions on the second).

    Returns:
      The reconstructions as a numpy array shaped like ``x``.
    """
    import keras
    import numpy as np

    from sparse_keras.layers import csc

    chain = csc.csc_layers(model)
    names = [layer.name for layer in chain]
    if layer_name not in names:
        raise ValueError(f"layer_name={layer_name!r} is not a CSC layer of {model.name!r}; its CSC layers are {names}")
    chain = chain[: names.index(layer_name) + 1]
    x = np.asarray(x, dtype="float32")
    codes = _layer_output(model, chain[-1], x)
    for outer, inner in zip(chain[::-1], chain[-2::-1] + [None]):
        codes = outer.reconstruct(codes)
        expected = inner.filters if inner is not None else x.shape[-1]
        if codes.shape[-1] != expected:
            raise ValueError(
                f"Cannot chain the dictionaries: {outer.name!r} reconstructs {codes.shape[-1]} channels but "
                f"{inner.name if inner is not None else 'the input'!r} has {expected}"
            )
    reconstruction = keras.ops.convert_to_numpy(codes)
    if path is not None:
        _save_image_rows([x, reconstruction], ["input", f"from {layer_name}"], path)
    return reconstruction


def dictionary_grid(layer, path, columns=None):
    """Saves the atoms of a CSC (or any conv) layer as an image grid (Dai et al. 2022 Fig. C.1); returns ``path``.

    Atoms with 3 input channels are drawn in RGB (each rescaled to [0, 1] on its own); others as the mean
    over their input channels, divided by the atom's largest absolute weight and drawn on a diverging
    colour map centred at zero (blue negative, white zero, red positive), so that every atom's shape is
    visible whatever its norm. Each atom is labelled with its index (its output channel).
    """
    import keras
    import numpy as np

    kernel = getattr(layer, "kernel", None)
    if kernel is None or len(kernel.shape) != 4:
        raise ValueError(f"dictionary_grid needs a layer with a 4-D conv kernel, got layer={layer!r}")
    atoms = np.moveaxis(keras.ops.convert_to_numpy(kernel), -1, 0)  # (filters, kh, kw, in)
    rgb = atoms.shape[-1] == 3
    count = atoms.shape[0]
    columns = columns or int(np.ceil(np.sqrt(count)))
    rows = int(np.ceil(count / columns))
    plt = pyplot()
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 0.9 + 1.2, rows * 0.95 + 0.9), squeeze=False)
    image = None
    for slot, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if slot >= count:
            ax.axis("off")
            continue
        atom = atoms[slot]
        if rgb:
            ax.imshow(_unit_range(atom), interpolation="nearest")
        else:
            atom = atom.mean(axis=-1)
            scale = np.abs(atom).max()
            image = ax.imshow(atom / scale if scale > 0 else atom, cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
        ax.set_title(f"#{slot}", fontsize=7, pad=2)
    shape = "x".join(str(n) for n in kernel.shape[:3])
    fig.suptitle(f"Dictionary of {layer.name}: {count} atoms of {shape} (height x width x input channels)", fontsize=10)
    if image is not None:
        bar = fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, pad=0.02)
        bar.set_label("weight / largest |weight| of the atom", fontsize=8)
        return save_figure(fig, path, tight=False)
    return save_figure(fig, path)


def code_histogram(codes, path, bins=60, title=None):
    """Histogram of code values with the share of exact zeros (Dai et al. 2022 Fig. D.1: 52% on CIFAR-10).

    Args:
      codes: CSC layer outputs, any shape (e.g. a sub-model's output on a test batch).
      path: the PNG file to write.
      bins: histogram bins.
      title: optional title; the zero fraction is always added.

    Returns:
      The fraction of code entries that are exactly zero.
    """
    import keras
    import numpy as np

    values = np.ravel(keras.ops.convert_to_numpy(codes))
    if values.size == 0:
        raise ValueError("code_histogram needs at least one code value, got an empty array")
    zero_fraction = float(np.mean(values == 0))
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.hist(values, bins=bins, log=True)
    ax.set_xlabel("code value")
    ax.set_ylabel("count (log)")
    ax.set_title(f"{title + ': ' if title else ''}{100 * zero_fraction:.1f}% exact zeros")
    save_figure(fig, path)
    return zero_fraction


def _layer_output(model, layer, x):
    import keras

    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    return keras.Model(inputs, layer.output)(x, training=False)


def _unit_range(image):
    low, high = image.min(), image.max()
    return (image - low) / (high - low) if high > low else image * 0.0


def _save_image_rows(batches, labels, path):
    plt = pyplot()
    count = min(len(batches[0]), 8)
    fig, axes = plt.subplots(len(batches), count, figsize=(1.4 * count, 1.5 * len(batches)), squeeze=False)
    for row, (batch, label) in enumerate(zip(batches, labels)):
        for column in range(count):
            image = batch[column]
            ax = axes[row, column]
            ax.axis("off")
            ax.imshow(_unit_range(image if image.shape[-1] == 3 else image.mean(axis=-1)), cmap="gray")
            if column == 0:
                ax.set_title(label, fontsize=8, loc="left")
    return save_figure(fig, path)

"""Pictures of convolutional sparse coding layers (SDNet, Dai et al. 2022 appendices B-D), as PNGs."""

import keras
import numpy as np

from sparse_keras.layers import csc
from sparse_keras.reports.figures import pyplot, save_figure


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

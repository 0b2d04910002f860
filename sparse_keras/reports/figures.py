"""The one figure saver of the library: matplotlib on the file-only Agg backend, PNGs written atomically.

matplotlib is imported on first use, never when sparse_keras is imported (the core needs only Keras).
"""

from sparse_keras.utils import files


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend (imported on first use, never at import time)."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path, tight=True):
    """Writes ``fig`` to ``path`` as PNG atomically and closes it; returns ``path``.

    ``tight=False`` for figures whose layout matplotlib cannot tighten (a colour bar spanning subplots).
    """
    if tight:
        fig.tight_layout()
    try:
        with files.atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")  # legends placed outside the axes stay in
    finally:
        pyplot().close(fig)
    return path

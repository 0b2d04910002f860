"""The one writer of result tables: markdown for reading, CSV for spreadsheets, both from the same rows.

Callers format their own cells (``f"{macs:,}"``, ``f"{accuracy:.4f}"``): what a number should look like
is the report's business, the table layout is this module's.
"""

import csv
import io

from sparse_keras.utils import files


def markdown_lines(header, rows, align=None):
    """A markdown table as a list of lines (no trailing newline), for reports that add text around it.

    Args:
      header: the column names.
      rows: sequences of cells, each written with ``str``.
      align: one of ``"left"``/``"right"`` per column (``"right"`` suits numbers); default all left.
    """
    align = align or ["left"] * len(header)
    if len(align) != len(header):
        raise ValueError(f"align needs one entry per column ({len(header)}), got {len(align)}")
    rule = {"left": "---", "right": "---:"}
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "".join(rule[a] + "|" for a in align)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    return lines


def markdown(header, rows, align=None):
    """A markdown table as text ending in a newline; see :func:`markdown_lines`."""
    return "\n".join(markdown_lines(header, rows, align)) + "\n"


def csv_text(header, rows):
    """The same table as CSV text (the ``csv`` module's dialect, so cells with commas are quoted)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def save(prefix, **texts):
    """Writes ``prefix.<ext>`` for each ``ext=text`` (e.g. ``md=..., csv=..., json=...``), each atomically.

    Returns ``{ext: path}``.
    """
    paths = {ext: f"{prefix}.{ext}" for ext in texts}
    for ext, text in texts.items():
        files.write_text(paths[ext], text)
    return paths

"""Rich output for the magics: HTML tables with text/plain and application/json alongside."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any


def table_bundle(
    title: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    data: Any,
    highlight: int = -1,
) -> dict[str, Any]:
    """A MIME bundle: an HTML table, an aligned text table and the data as JSON."""
    head = "".join(f"<th style='text-align:left'>{html.escape(c)}</th>" for c in columns)
    body = []
    for i, row in enumerate(rows):
        style = " style='font-weight:bold'" if i == highlight else ""
        cells = "".join(f"<td style='text-align:left'>{html.escape(_s(v))}</td>" for v in row)
        body.append(f"<tr{style}>{cells}</tr>")
    html_text = (
        f"<div class='kernelstacks'><b>{html.escape(title)}</b>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
    )
    return {
        "text/html": html_text,
        "text/plain": text_table(title, columns, rows),
        "application/json": data,
    }


def human_size(size: int) -> str:
    """Bytes as a short human-readable figure (binary units, like ``du -h``)."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"  # pragma: no cover - loop always returns


def _s(value: Any) -> str:
    return "" if value is None else str(value)


def text_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Plain-text aligned table (what a terminal or a text-only frontend shows)."""
    cells = [list(columns), *[[_s(v) for v in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = [title]
    for n, row in enumerate(cells):
        lines.append("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def publish(bundle: dict[str, Any]) -> None:
    """Display a MIME bundle in the current frontend."""
    from IPython.display import display

    display(bundle, raw=True)


def error_line(message: str) -> None:
    """A failure is one readable line (stderr), never a traceback."""
    import sys

    print(f"%venvstacks: {message}", file=sys.stderr)

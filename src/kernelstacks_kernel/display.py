"""Rich output for the magics: HTML tables with a text alternative; JSON only when asked.

JupyterLab, Notebook 7 and VS Code rank ``application/json`` above ``text/html`` and show it as a
collapsed tree, so a default bundle never carries it: tables are ``text/html`` + ``text/plain``.
``--json`` output uses :data:`~kernelstacks_kernel.contract.JSON_MIME`, which no frontend
prefers over anything (they show its ``text/plain``, the indented JSON), while programs reading
the notebook find the data under that type.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from typing import Any

from kernelstacks_kernel.contract import JSON_MIME


class VenvstacksError(Exception):
    """A failed ``%venvstacks`` (or ``%pip``): one readable line, and the cell fails.

    IPython shows ``_render_traceback_`` instead of a traceback; the cell's status is ``error``
    so Run All, nbconvert and papermill stop there.
    """

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[0;31m{type(self).__name__}\x1b[0m: {self}"]


def table_bundle(
    title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], highlight: int = -1
) -> dict[str, Any]:
    """A MIME bundle: an HTML table and the same table as aligned text."""
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
    return {"text/html": html_text, "text/plain": text_table(title, columns, rows)}


def json_bundle(data: Any) -> dict[str, Any]:
    """``--json`` output: the data under our own MIME type, indented JSON as its text form."""
    return {JSON_MIME: data, "text/plain": json.dumps(data, indent=1, default=str)}


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
        lines.append("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def publish(bundle: dict[str, Any], display_id: str | None = None, update: bool = False) -> None:
    """Display (or, with ``update``, replace) a MIME bundle in the current frontend."""
    from IPython.display import display, update_display

    if update and display_id:
        update_display(bundle, raw=True, display_id=display_id)
    elif display_id:
        display(bundle, raw=True, display_id=display_id)
    else:
        display(bundle, raw=True)


class KernelRestarting(VenvstacksError):
    """``%venvstacks restart`` in an interactive frontend: the run stops, the kernel restarts."""

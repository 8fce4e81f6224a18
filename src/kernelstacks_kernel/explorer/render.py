"""The explorer's HTML: package table, lock badges, header, captions, the restart notice.

Inline styles only, so nothing has to be installed into the front-end; plain functions of the
model, so the markup can be checked without a browser.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

from kernelstacks_kernel.display import human_size
from kernelstacks_kernel.explorer.model import PackageRow, StackLayer

#: The tree's groups: layer kind and its heading.
KINDS = (("runtime", "Runtimes"), ("framework", "Frameworks"), ("application", "Applications"))
#: Marks this kernel's own layers in the tree and the header.
CHAIN_MARK = "●"
RESTART_NOTICE = (
    "Restart this kernel to use the new layers (Kernel → Restart, or <code>%venvstacks restart"
    "</code>)."
)
LOCK_COLOURS = {
    "valid": "#2e7d32",
    "stale": "#ef6c00",
    "missing": "#9e9e9e",
    "corrupt": "#c62828",
}
DIM = "color: var(--jp-ui-font-color2, #757575)"

# -- the package table ----------------------------------------------------------------------------


def _notes(row: PackageRow) -> str:
    notes = []
    if row.shadowed_by:
        notes.append(f"✕ shadowed by {row.shadowed_by}")
    if row.shadows:
        notes.append(f"shadows the copy in {', '.join(row.shadows)}")
    if row.shared_with:
        notes.append(f"◆ also in {', '.join(row.shared_with)}")
    return html.escape("; ".join(notes))


def _row_html(row: PackageRow) -> str:
    style = " style='text-decoration: line-through; opacity: 0.6'" if row.shadowed else ""
    marks = ("◆ " if row.shared else "") + ("✕ " if row.shadowed else "")
    required = ", ".join(row.required_by[:8]) + (" …" if len(row.required_by) > 8 else "")
    cells = [
        f"{marks}<b>{html.escape(row.display_name)}</b>",
        html.escape(row.version),
        human_size(row.size) if row.size else "",
        html.escape(required),
        _notes(row),
    ]
    tds = "".join(f"<td style='text-align:left; padding:1px 8px'>{c}</td>" for c in cells)
    return f"<tr{style}>{tds}</tr>"


def render_table(rows: Sequence[PackageRow], empty: str = "no packages") -> str:
    """The HTML of the package table (inline styles: no CSS to install in the front-end)."""
    if not rows:
        return f"<i style='{DIM}'>{html.escape(empty)}</i>"
    columns = ["package", "version", "size", "required by", "notes"]
    head = "".join(f"<th style='text-align:left; padding:1px 8px'>{c}</th>" for c in columns)
    body = "".join(_row_html(row) for row in rows)
    return (
        "<div style='max-height: 24em; overflow: auto'>"
        f"<table style='border-collapse: collapse'><thead><tr>{head}</tr></thead>"
        f"<tbody>{body}</tbody></table></div>"
    )


def caption_html(layer: StackLayer, all_rows: Sequence[PackageRow], shown: int, text: str) -> str:
    """The line above the table: layer, how many packages (of how many), their size."""
    total = len(all_rows)
    count = f"{shown} of {total}" if text else str(total)
    size = human_size(sum(row.size for row in all_rows))
    view = "as this kernel sees it" if layer.in_chain else "as its own chain sees it"
    return (
        f"<b>{html.escape(layer.build_name)}</b>: {count} package{'' if total == 1 else 's'}, "
        f"{size} "
        f"<span style='{DIM}'>({view}; ◆ also in another layer, ✕ shadowed by a layer "
        "earlier in sys.path)</span>"
    )


# -- the tree and the header ----------------------------------------------------------------------


def lock_badge(layer: StackLayer) -> str:
    """A coloured ``lock: <state>`` badge (grey "not checked" until ``show`` answered)."""
    state = layer.lock_state
    colour = LOCK_COLOURS.get(state, "#9e9e9e")
    text = "lock: not checked" if state == "unknown" else f"lock: {state}"
    if layer.lock_version is not None and state in ("valid", "stale", "unknown"):
        text += f" (v{layer.lock_version})"
    return (
        f"<span style='background:{colour}; color:white; border-radius:4px; padding:0 5px;"
        f" font-size:85%'>{html.escape(text)}</span>"
    )


def tree_row_html(layer: StackLayer) -> str:
    """What follows a layer's button in the tree: lock badge, deployed name, lower layers."""
    extra = ""
    if layer.deploy_name and layer.deploy_name != layer.build_name:
        extra += f" → {html.escape(layer.deploy_name)}"
    if layer.lower_layers:
        extra += f" <span style='{DIM}'>on {html.escape(', '.join(layer.lower_layers))}</span>"
    return f"{lock_badge(layer)}{extra}"


def header_html(
    stack_name: str, spec: Path | None, chain_names: Sequence[str], source_note: str
) -> str:
    """The explorer's first line: stack, stack file, this kernel's chain, where the tree is from."""
    chain = " → ".join(html.escape(n) for n in chain_names) or "(none)"
    name = html.escape(stack_name or "kernelstacks")
    spec_text = html.escape(str(spec or "no stack file"))
    return (
        f"<b>{name}</b> <span style='{DIM}'>{spec_text}</span><br>"
        f"{CHAIN_MARK} this kernel: {chain} <span style='{DIM}'>"
        f"· {html.escape(source_note)}</span>"
    )


def restart_notice_html(rebuilt: Sequence[str]) -> str:
    """Tell the user that this kernel runs on old copies of the layers a build replaced."""
    return (
        f"<b>This kernel's layers were rebuilt ({html.escape(', '.join(rebuilt))}).</b> "
        f"{RESTART_NOTICE}"
    )

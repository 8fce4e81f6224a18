"""The explorer's layer tree: a heading per kind, a button with a lock badge per layer.

The rows are rebuilt whenever the stack is re-read (the layers may have changed); selecting only
restyles the buttons. A click hands the layer's build name to the explorer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import ipywidgets as widgets

from kernelstacks_kernel.explorer.model import StackLayer
from kernelstacks_kernel.explorer.render import CHAIN_MARK, DIM, KINDS, tree_row_html


@dataclass
class TreeRow:
    """One clickable layer of the tree."""

    layer: StackLayer
    button: widgets.Button
    badge: widgets.HTML
    box: widgets.HBox


class StackTree:
    """The tree widget (``box``) and its rows by build name."""

    def __init__(self, on_select: Callable[[str], object]) -> None:
        self.box = widgets.VBox(layout=widgets.Layout(min_width="22em", margin="0 1em 0 0"))
        self.rows: dict[str, TreeRow] = {}
        self._on_select = on_select

    def render(self, layers: Sequence[StackLayer]) -> None:
        """Rebuild the rows: Runtimes, Frameworks, Applications, then any other kind."""
        rows: dict[str, TreeRow] = {}
        children: list[widgets.Widget] = []
        known = {kind for kind, _title in KINDS}
        groups = [*KINDS, ("other", "Other layers")]
        for kind, title in groups:
            members = [
                layer
                for layer in layers
                if layer.kind == kind or (kind == "other" and layer.kind not in known)
            ]
            if not members:
                continue
            children.append(widgets.HTML(f"<b>{title}</b>"))
            for layer in members:
                rows[layer.build_name] = self._row(layer)
                children.append(rows[layer.build_name].box)
        if not children:
            children.append(widgets.HTML(f"<i style='{DIM}'>no layers found</i>"))
        self.rows = rows
        self.box.children = children

    def _row(self, layer: StackLayer) -> TreeRow:
        label = f"{CHAIN_MARK} {layer.build_name}" if layer.in_chain else layer.build_name
        button = widgets.Button(
            description=label,
            tooltip="in this kernel's chain" if layer.in_chain else "not used by this kernel",
            layout=widgets.Layout(width="auto", min_width="12em"),
        )
        button.style.font_weight = "bold" if layer.in_chain else "normal"
        button.on_click(lambda _b, name=layer.build_name: self._on_select(name))
        badge = widgets.HTML(tree_row_html(layer))
        box = widgets.HBox([button, badge], layout=widgets.Layout(margin="0 0 0 1em"))
        return TreeRow(layer, button, badge, box)

    def mark(self, selected: str | None) -> None:
        """Highlight the selected layer's button."""
        for name, row in self.rows.items():
            row.button.button_style = "info" if name == selected else ""

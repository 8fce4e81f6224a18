"""The layer explorer of ``%venvstacks explore``: plain ipywidgets, no custom front-end code.

- :mod:`.model`: the stack's layers and one layer's package rows, as plain data;
- :mod:`.catalog`: where each layer's packages are read from (cached rows);
- :mod:`.render`: the HTML (package table, lock badges, header, captions);
- :mod:`.events`: the tool's output (``show``'s document, ``--json`` events, run summaries);
- :mod:`.tree`, :mod:`.panel`: the layer tree and the progress/log part of the widget;
- :mod:`.widget`: :class:`Explorer`, which puts them together.
"""

from __future__ import annotations

from kernelstacks_kernel.explorer.events import JsonDocument, format_event
from kernelstacks_kernel.explorer.model import PackageRow, StackLayer, package_rows
from kernelstacks_kernel.explorer.render import human_size, render_table
from kernelstacks_kernel.explorer.widget import Explorer

__all__ = [
    "Explorer",
    "JsonDocument",
    "PackageRow",
    "StackLayer",
    "format_event",
    "human_size",
    "package_rows",
    "render_table",
]

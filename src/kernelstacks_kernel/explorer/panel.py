"""The part of the explorer that follows a lock or build: progress bar, status, notice, log.

Events arrive on the tool's reader thread while the kernel keeps answering, so each update only
sets widget values (ipywidgets syncs them to the front-end); the log is capped so a long build
cannot grow the notebook without bound.
"""

from __future__ import annotations

import threading

import ipywidgets as widgets

from kernelstacks_kernel import contract
from kernelstacks_kernel.explorer.events import format_event
from kernelstacks_kernel.toolrun import Event

MAX_LOG_LINES = 2000


class RunPanel:
    """Progress bar, status line, restart notice and log of the explorer's tool runs."""

    def __init__(self) -> None:
        self.progress = widgets.IntProgress(value=0, min=0, max=1, description="idle")
        self.status = widgets.Label(value="")
        self.notice = widgets.HTML()
        self.log = widgets.Textarea(
            value="", disabled=True, rows=8, layout=widgets.Layout(width="100%")
        )
        self._lines: list[str] = []
        self._lock = threading.Lock()

    def write(self, line: str) -> None:
        """Append one line to the log (the oldest lines go beyond :data:`MAX_LOG_LINES`)."""
        with self._lock:
            self._lines.append(line)
            del self._lines[:-MAX_LOG_LINES]
            self.log.value = "\n".join(self._lines)

    def set_status(self, text: str) -> None:
        """The one-line status beside the progress bar."""
        self.status.value = text

    def begin(self, action: str) -> None:
        """Reset progress, log and notice for a new run."""
        with self._lock:
            self._lines = []
            self.log.value = ""
        self.notice.value = ""
        self.progress.bar_style = ""
        self.progress.value = 0
        self.progress.max = 1
        self.progress.description = action
        self.set_status(f"{action}: starting kernelstacks…")

    def follow(self, event: Event) -> None:
        """Show one ``--json`` event: the bar counts finished layers, the log gets a line."""
        kind = event.get(contract.EVENT)
        if kind == contract.EV_START:
            self.progress.value = 0
            self.progress.max = max(1, int(event.get("total") or 1))
            self.progress.description = str(event.get("action") or self.progress.description)
        elif kind == contract.EV_LAYER_STARTED:
            self.set_status(f"{event.get('action', '')} {event.get('layer', '')}…")
        elif kind == contract.EV_LAYER_FINISHED:
            self.progress.value = min(self.progress.max, self.progress.value + 1)
        self.write(format_event(event))

    def show_result(self, ok: bool, text: str) -> None:
        """The end of a run: a green (full) or red bar, and the summary in log and status."""
        self.progress.bar_style = "success" if ok else "danger"
        if ok:
            self.progress.value = self.progress.max
        self.write(text)
        self.set_status(text)

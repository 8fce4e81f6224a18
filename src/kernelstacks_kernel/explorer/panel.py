"""The part of the explorer that follows a lock or build: progress bar, status, notice, log.

Events arrive on the tool's reader thread while the kernel keeps answering, so each update only
sets widget values (ipywidgets syncs them to the front-end); the log is capped so a long build
cannot grow the notebook without bound. The log is an HTML block laid out bottom-up
(``flex-direction: column-reverse``), so the browser keeps its newest line in view without any
front-end code; the status line names the layer whose step came last, with how many others are
still in progress (independent layers build in parallel).
"""

from __future__ import annotations

import html
import threading

import ipywidgets as widgets

from kernelstacks_kernel import contract
from kernelstacks_kernel.explorer.events import format_event
from kernelstacks_kernel.toolrun import Event

MAX_LOG_LINES = 2000
#: The log: bottom-anchored scrolling box (column-reverse keeps the newest line in view).
LOG_HTML = (
    "<div style='max-height: 12em; overflow: auto; display: flex; "
    "flex-direction: column-reverse; border: 1px solid var(--jp-border-color2, #ddd); "
    "padding: 2px 6px'><pre style='margin: 0; white-space: pre-wrap; flex-shrink: 0; "
    "overflow: visible'>{}</pre></div>"
)


class RunPanel:
    """Progress bar, status line, restart notice and log of the explorer's tool runs."""

    def __init__(self) -> None:
        self.progress = widgets.IntProgress(value=0, min=0, max=1, description="idle")
        self.status = widgets.Label(value="")
        self.notice = widgets.HTML()
        self.log = widgets.HTML(value=LOG_HTML.format(""), layout=widgets.Layout(width="100%"))
        self._lines: list[str] = []
        self._active: dict[str, str] = {}
        self._lock = threading.Lock()

    @property
    def text(self) -> str:
        """The log as plain text (newest line last)."""
        with self._lock:
            return "\n".join(self._lines)

    def write(self, line: str) -> None:
        """Append one line to the log (the oldest lines go beyond :data:`MAX_LOG_LINES`)."""
        with self._lock:
            self._lines.append(line)
            del self._lines[:-MAX_LOG_LINES]
            self.log.value = LOG_HTML.format(html.escape("\n".join(self._lines), quote=False))

    def set_status(self, text: str) -> None:
        """The one-line status beside the progress bar."""
        self.status.value = text

    def begin(self, action: str) -> None:
        """Reset progress, log and notice for a new run."""
        with self._lock:
            self._lines = []
            self._active = {}
            self.log.value = LOG_HTML.format("")
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
        elif kind in (contract.EV_LAYER_STARTED, contract.EV_STEP):
            doing = event.get("action") if kind == contract.EV_LAYER_STARTED else None
            self._working(str(event.get("layer", "")), str(doing or event.get("message", "")))
        elif kind == contract.EV_LAYER_FINISHED:
            self.progress.value = min(self.progress.max, self.progress.value + 1)
            self._active.pop(str(event.get("layer", "")), None)
            if self._active:
                layer, doing = next(reversed(self._active.items()))
                self._working(layer, doing)
        self.write(format_event(event))

    def _working(self, layer: str, doing: str) -> None:
        """Status: the layer that reported last, and how many others are in progress."""
        self._active.pop(layer, None)
        self._active[layer] = doing
        others = len(self._active) - 1
        more = f" (+{others} more in progress)" if others else ""
        self.set_status(f"{layer}: {doing}…{more}")

    def show_result(self, ok: bool, text: str) -> None:
        """The end of a run: a green (full) or red bar, and the summary in log and status."""
        self.progress.bar_style = "success" if ok else "danger"
        if ok:
            self.progress.value = self.progress.max
        self.write(text)
        self.set_status(text)

"""Live progress of a tool run inside a cell: a progress bar, log lines, then a summary.

The bar is displayed with a display id and a text form of our own; when the run ends, the display
is updated, so a notebook saved or executed by nbclient shows "build: done (2 built, 3
unchanged)" as the bar's text instead of ipywidgets' ``IntProgress(value=0, ...)``.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from typing import Any

from kernelstacks_kernel import contract, display


def count_states(done: dict[str, Any]) -> str:
    """``2 built, 3 unchanged`` from a ``done`` event."""
    layers = done.get("layers") if isinstance(done.get("layers"), dict) else {}
    counts = Counter((layers or {}).values())
    return ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "no layers"


class ProgressView:
    """Shows events of a kernelstacks run as they come (ipywidgets bar when available)."""

    def __init__(self, action: str):
        self.action = action
        self.phase = action
        self.display_id = f"kernelstacks-progress-{uuid.uuid4().hex}"
        self.bar: Any = None
        try:
            import ipywidgets

            self.bar = ipywidgets.IntProgress(
                value=0,
                min=0,
                max=1,
                description=f"{action}:",
                bar_style="info",
                layout=ipywidgets.Layout(width="60%"),
            )
            self._show(f"{action}: starting kernelstacks…")
        except Exception:
            self.bar = None

    def _show(self, text: str, update: bool = False) -> None:
        """(Re)display the bar with ``text`` as what text-only readers see."""
        if self.bar is None:
            return
        bundle = dict(self.bar._repr_mimebundle_() or {})
        bundle["text/plain"] = text
        display.publish(bundle, self.display_id, update=update)

    def event(self, event: dict[str, Any]) -> None:
        """Update the bar and print a log line for one tool event."""
        kind = event.get(contract.EVENT)
        if kind == contract.EV_START:
            self.phase = str(event.get("action") or self.action)
            if self.bar is not None:  # each phase (lock, then build) counts from zero
                self.bar.value = 0
                self.bar.max = max(1, int(event.get("total") or 1))
                self.bar.description = f"{self.phase}:"
        elif kind == contract.EV_LAYER_FINISHED:
            if self.bar is not None:
                self.bar.value = min(self.bar.max, self.bar.value + 1)
            extra = f"  {event['message']}" if event.get("message") else ""
            print(
                f"{event.get('status', ''):>9} {event.get('layer')} "
                f"({event.get('seconds', 0):.1f}s){extra}",
                flush=True,
            )
        elif kind == contract.EV_ERROR:
            print(f"error: {event.get('layer') or ''}: {event.get('message')}", flush=True)
        elif kind == contract.EV_NOTE:
            print(f"note: {event.get('message')}", flush=True)
        elif kind == contract.EV_EDITED:
            for change in event.get("changes") or ["no change"]:
                print(f"{event.get('layer')}: {change}", flush=True)
        elif kind == contract.EV_KERNEL_INSTALLED:
            print(f"kernel {event.get('name')} registered", flush=True)

    def line(self, text: str) -> None:
        """A plain stderr line of the tool."""
        print(text, flush=True)

    def finish(self, run: Any, interrupted: bool = False) -> str | None:
        """Final state: summary table and restart advice; returns why it failed, if it did."""
        if interrupted or run is None:
            self._style("warning")
            self._show(f"{self.action}: {'interrupted' if interrupted else 'not run'}", True)
            return None
        summary = run.summary or {}
        ok = run.returncode == 0 and bool(summary.get("ok", True))
        self._style("success" if ok else "danger")
        states = count_states(summary) if summary else "no summary"
        self._show(f"{self.action}: {'done' if ok else 'FAILED'} ({states})", True)
        layers = summary.get("layers", {})
        if layers:
            rows = [
                [name, state, summary.get("errors", {}).get(name, "")]
                for name, state in layers.items()
            ]
            title = f"{self.action}: {'done' if ok else 'FAILED'}"
            display.publish(display.table_bundle(title, ["layer", "result", "error"], rows))
        if not ok:
            last = next((line for line in reversed(run.log) if line.strip()), "see the log above")
            errors = summary.get("errors") or {}
            if errors:
                layer, message = next(iter(errors.items()))
                last = f"{layer}: {str(message).splitlines()[0] if message else ''}"
            return f"{self.action} failed: {last}"
        self._restart_advice(layers)
        return None

    def _restart_advice(self, layers: dict[str, str]) -> None:
        from kernelstacks_kernel.chain import current_chain

        mine = os.environ.get(contract.ENV_LAYER)
        chain = {layer.build_name for layer in current_chain()}
        rebuilt = sorted(n for n, s in layers.items() if s == "built" and n in chain)
        if rebuilt:
            print(
                f"This kernel ({mine}) runs on rebuilt layers ({', '.join(rebuilt)}): run "
                "%venvstacks restart (or Kernel > Restart Kernel) to use them."
            )

    def _style(self, style: str) -> None:
        if self.bar is not None:
            self.bar.bar_style = style
            if style == "success":
                self.bar.value = self.bar.max

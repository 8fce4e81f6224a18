"""Live progress of a tool run inside a cell: a progress bar, log lines, then a summary."""

from __future__ import annotations

import os
import sys
from typing import Any

from kernelstacks_kernel import contract, display


class ProgressView:
    """Shows events of a kernelstacks run as they come (ipywidgets bar when available)."""

    def __init__(self, action: str):
        self.action = action
        self.bar: Any = None
        try:
            import ipywidgets
            from IPython.display import display as show

            self.bar = ipywidgets.IntProgress(
                value=0,
                min=0,
                max=1,
                description=f"{action}:",
                bar_style="info",
                layout=ipywidgets.Layout(width="60%"),
            )
            show(self.bar)
        except Exception:
            self.bar = None

    def event(self, event: dict[str, Any]) -> None:
        """Update the bar and print a log line for one tool event."""
        kind = event.get(contract.EVENT)
        if kind == contract.EV_START and self.bar is not None:
            self.bar.max = max(1, int(event.get("total") or 1))
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

    def finish(self, run: Any, interrupted: bool = False) -> None:
        """Final state: summary table, and whether this kernel must restart."""
        if interrupted:
            self._style("warning")
            display.error_line(f"{self.action} interrupted; every working layer was kept")
            return
        summary = run.summary or {}
        ok = run.returncode == 0
        self._style("success" if ok else "danger")
        layers = summary.get("layers", {})
        if layers:
            rows = [
                [name, state, summary.get("errors", {}).get(name, "")]
                for name, state in layers.items()
            ]
            display.publish(
                display.table_bundle(
                    f"{self.action}: {'done' if ok else 'FAILED'}",
                    ["layer", "result", "error"],
                    rows,
                    summary,
                )
            )
        if not ok:
            last = next((line for line in reversed(run.log) if line.strip()), "see the log above")
            display.error_line(f"{self.action} failed: {last}")
            return
        mine = os.environ.get(contract.ENV_LAYER)
        from kernelstacks_kernel.chain import current_chain

        chain = {layer.build_name for layer in current_chain()}
        rebuilt = sorted(n for n, s in layers.items() if s == "built" and n in chain)
        if rebuilt:
            print(
                f"This kernel ({mine}) runs on rebuilt layers ({', '.join(rebuilt)}): run "
                "%venvstacks restart (or Kernel > Restart Kernel) to use them.",
                file=sys.stdout,
            )

    def _style(self, style: str) -> None:
        if self.bar is not None:
            self.bar.bar_style = style
            if style == "success":
                self.bar.value = self.bar.max

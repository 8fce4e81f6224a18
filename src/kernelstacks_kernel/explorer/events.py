"""The tool's output as the explorer reads it: ``show``'s document, events, run summaries.

``--progress-json`` commands print one event per line (names in
:mod:`kernelstacks_kernel.contract`); ``show --json`` (venvstacks' status document, our layer
records under its ``kernelstacks`` key) and any command whose stack file is invalid print one
indented JSON document instead. This module turns both into log lines and one-line status
texts, without widgets.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kernelstacks_kernel import contract
from kernelstacks_kernel.progress_view import count_states
from kernelstacks_kernel.toolrun import Event, ToolRun


class JsonDocument:
    """Collects a pretty-printed JSON document from the tool's non-event stdout lines.

    ``show --json`` prints one indented document, and so does any command whose stack file is
    invalid (``{"error": ..., "problems": [...]}``). :class:`ToolRun` hands such lines over one
    at a time (stripped), so they are gathered here until they parse.
    """

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.document: dict[str, Any] | None = None

    def feed(self, line: str) -> bool:
        """Take a line if it belongs to the document; False for other (stderr) lines."""
        if self.document is not None or (not self.lines and line.strip() != "{"):
            return False
        self.lines.append(line)
        if line.lstrip().startswith("}"):
            try:
                parsed = json.loads("\n".join(self.lines))
            except ValueError:
                return True
            self.document = parsed if isinstance(parsed, dict) else {}
        return True

    @property
    def error(self) -> str | None:
        """The tool's error message, when the document is one."""
        if self.document and isinstance(self.document.get("error"), str):
            return self.document["error"]
        return None


def format_event(event: Event) -> str:
    """One log line for one ``--json`` event."""
    kind = event.get(contract.EVENT)
    layer = event.get("layer") or ""
    if kind == contract.EV_START:
        layers = ", ".join(event.get("layers", []))
        return f"{event.get('action', '')}: {event.get('total', 0)} layers ({layers})"
    if kind == contract.EV_LAYER_STARTED:
        return f"{layer}: {event.get('action', '')}"
    if kind == contract.EV_STEP:
        return f"{layer}: {event.get('message', '')}"
    if kind == contract.EV_LAYER_FINISHED:
        extra = f"  {event['message']}" if event.get("message") else ""
        seconds = float(event.get("seconds") or 0)
        return f"{layer}: {event.get('status', '')} ({seconds:.1f}s){extra}"
    if kind == contract.EV_NOTE:
        return f"note: {event.get('message', '')}"
    if kind == contract.EV_ERROR:
        return f"error: {layer + ': ' if layer else ''}{event.get('message', '')}"
    if kind == contract.EV_DONE:
        return f"{'ok' if event.get('ok', True) else 'failed'}: {count_states(event)}"
    return json.dumps(event, default=str)


# -- show ----------------------------------------------------------------------------------------


@dataclass
class StackShow:
    """What ``show --json`` answered: the document, or why there is none."""

    document: dict[str, Any] | None
    reason: str = ""
    lines: list[str] = field(default_factory=list)


def show_stack(spec: Path) -> StackShow:
    """Run ``show --json`` (blocking: call it in a thread); other output lines are kept."""
    document = JsonDocument()
    other: list[str] = []
    run = ToolRun(["show", str(spec), "--json"], on_line=_collect(document, other))
    try:
        run.run()
    except Exception as exc:  # the tool cannot even start
        return StackShow(None, f"{type(exc).__name__}: {exc}", other)
    # venvstacks' status document; kernelstacks' own layer records are under "kernelstacks"
    ours = (document.document or {}).get("kernelstacks")
    if isinstance(ours, dict) and "layers" in ours:
        return StackShow(ours, "", other)
    reason = document.error or (other[-1] if other else f"exit status {run.returncode}")
    return StackShow(None, reason, other)


def _collect(document: JsonDocument, other: list[str]) -> Callable[[str], None]:
    """A line callback: the document's lines go to it, the rest (stderr) to ``other``."""

    def on_line(line: str) -> None:
        if not document.feed(line):
            other.append(line)

    return on_line


# -- lock / build runs ---------------------------------------------------------------------------


@dataclass
class RunState:
    """What one lock/build run has reported so far."""

    action: str
    statuses: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    document: JsonDocument = field(default_factory=JsonDocument)
    interrupted: bool = False
    started: float = field(default_factory=time.monotonic)

    def record(self, event: Event) -> None:
        """Keep each finished layer's status and each error message of one event."""
        kind = event.get(contract.EVENT)
        if kind == contract.EV_LAYER_FINISHED:
            self.statuses[str(event.get("layer"))] = str(event.get("status"))
        elif kind == contract.EV_ERROR:
            layer = event.get("layer")
            self.errors.append(f"{layer + ': ' if layer else ''}{event.get('message', '')}")


def first_error(run: ToolRun, state: RunState) -> str:
    """The most useful one-line reason for a failed run."""
    done = run.summary or {}
    errors = done.get("errors") if isinstance(done.get("errors"), dict) else {}
    if errors:
        layer, message = next(iter(errors.items()))
        return f"{layer}: {message}"
    if state.errors:
        return state.errors[0]
    if state.document.error:
        return state.document.error
    last = next((line for line in reversed(run.log) if line.strip()), "")
    return last or f"exit status {run.returncode}"


def run_summary(run: ToolRun, state: RunState) -> tuple[bool, str]:
    """(ok, status line) once a run has ended."""
    seconds = time.monotonic() - state.started
    if state.interrupted:
        return False, f"{state.action} interrupted: every working layer was kept"
    done = run.summary
    ok = run.returncode == 0 and bool(done is None or done.get("ok", True))
    counts = count_states(done) if done else "no summary"
    if ok:
        return True, f"{state.action} done in {seconds:.1f}s: {counts}"
    reason = first_error(run, state).strip().splitlines()
    more = f" (+{len(reason) - 1} more lines in the log)" if len(reason) > 1 else ""
    return False, f"{state.action} failed: {reason[0] if reason else '?'}{more}"

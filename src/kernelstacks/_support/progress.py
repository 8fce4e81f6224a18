"""Progress reporting for long work (lock, build): rich in a terminal, JSON lines for programs.

The engine only calls :class:`Reporter` methods; the CLI picks the implementation.  The JSON
form (one object per line on stdout) is what the notebook side reads to drive its progress bar,
so its event names and fields are part of :mod:`kernelstacks_kernel.contract`.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import IO, Any

from kernelstacks_kernel import contract


class Reporter:
    """Silent reporter; subclasses show progress.  Thread-safe: layers build in parallel."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.total = 0
        self.finished = 0

    def start(self, action: str, layers: list[str]) -> None:
        """A command (or a phase of one, e.g. lock then build) starts working on ``layers``."""
        self.total = len(layers)
        self.finished = 0

    def layer_started(self, layer: str, action: str) -> None:
        """Work on one layer begins."""

    def step(self, layer: str, message: str) -> None:
        """A step within a layer (resolving, installing, compiling...)."""

    def layer_finished(self, layer: str, status: str, seconds: float, message: str = "") -> None:
        """A layer is done: status is ``built``, ``locked``, ``skipped``, ``unchanged``..."""
        with self._lock:
            self.finished += 1

    def bytes(self, layer: str, done: int, total: int) -> None:
        """Bytes processed for one layer (archiving, unpacking): ``done`` of ``total``."""

    def error(self, layer: str | None, message: str) -> None:
        """Something failed."""

    def note(self, message: str) -> None:
        """A remark that is not tied to progress (e.g. which runtime source was used)."""

    def done(self, summary: dict[str, Any]) -> None:
        """The command finished."""

    def close(self) -> None:
        """Release the terminal."""


class JsonReporter(Reporter):
    """One JSON object per line, flushed at once so a reader sees progress live."""

    #: Seconds between two ``bytes`` events of one layer.
    BYTES_INTERVAL = 0.25

    def __init__(self, stream: IO[str] | None = None):
        super().__init__()
        self.stream = stream or sys.stdout
        self.t0 = time.monotonic()
        self._last_bytes: dict[str, float] = {}

    def emit(self, event: str, **fields: Any) -> None:
        """Write one event line."""
        record = {contract.EVENT: event, "time": round(time.monotonic() - self.t0, 3), **fields}
        with self._lock:
            self.stream.write(json.dumps(record, default=str) + "\n")
            self.stream.flush()

    def start(self, action: str, layers: list[str]) -> None:
        super().start(action, layers)
        self.emit(contract.EV_START, action=action, layers=layers, total=len(layers))

    def layer_started(self, layer: str, action: str) -> None:
        self.emit(contract.EV_LAYER_STARTED, layer=layer, action=action)

    def step(self, layer: str, message: str) -> None:
        self.emit(contract.EV_STEP, layer=layer, message=message)

    def layer_finished(self, layer: str, status: str, seconds: float, message: str = "") -> None:
        super().layer_finished(layer, status, seconds, message)
        self.emit(
            contract.EV_LAYER_FINISHED,
            layer=layer,
            status=status,
            seconds=round(seconds, 3),
            message=message,
            index=self.finished,
            total=self.total,
        )

    def bytes(self, layer: str, done: int, total: int) -> None:
        """At most a few events per second per layer, and always the last one."""
        now = time.monotonic()
        with self._lock:
            last = self._last_bytes.get(layer, 0.0)
            if done < total and now - last < self.BYTES_INTERVAL:
                return
            self._last_bytes[layer] = now
        self.emit(contract.EV_BYTES, layer=layer, done=done, total=total)

    def error(self, layer: str | None, message: str) -> None:
        self.emit(contract.EV_ERROR, layer=layer, message=message)

    def note(self, message: str) -> None:
        self.emit(contract.EV_NOTE, message=message)

    def done(self, summary: dict[str, Any]) -> None:
        self.emit(contract.EV_DONE, **summary)


class PlainReporter(Reporter):
    """A line per finished layer on stderr, for logs and pipes (no live display)."""

    def layer_finished(self, layer: str, status: str, seconds: float, message: str = "") -> None:
        super().layer_finished(layer, status, seconds, message)
        extra = f"  {message}" if message else ""
        print(f"{status:>9} {layer} ({seconds:.1f}s){extra}", file=sys.stderr, flush=True)

    def error(self, layer: str | None, message: str) -> None:
        print(f"error: {layer + ': ' if layer else ''}{message}", file=sys.stderr, flush=True)

    def note(self, message: str) -> None:
        print(f"note: {message}", file=sys.stderr, flush=True)


class RichReporter(Reporter):
    """A live rich progress display: an overall bar plus a line per layer in progress."""

    def __init__(self) -> None:
        super().__init__()
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self.console = Console(stderr=True, highlight=False, soft_wrap=True)
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            _amount_column(),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
        )
        self.overall: Any = None
        self.tasks: dict[str, Any] = {}

    def start(self, action: str, layers: list[str]) -> None:
        super().start(action, layers)
        self.progress.start()
        self.overall = self.progress.add_task(f"[bold]{action}[/]", total=len(layers))

    def layer_started(self, layer: str, action: str) -> None:
        with self._lock:
            self.tasks[layer] = self.progress.add_task(f"  {layer}: {action}", total=None)

    def step(self, layer: str, message: str) -> None:
        with self._lock:
            task = self.tasks.get(layer)
            if task is not None:
                self.progress.update(task, description=f"  {layer}: {message}")

    def bytes(self, layer: str, done: int, total: int) -> None:
        with self._lock:
            task = self.tasks.get(layer)
            if task is not None:
                self.progress.update(task, completed=done, total=total, unit="bytes")

    def layer_finished(self, layer: str, status: str, seconds: float, message: str = "") -> None:
        super().layer_finished(layer, status, seconds, message)
        with self._lock:
            task = self.tasks.pop(layer, None)
            if task is not None:
                self.progress.remove_task(task)
            if self.overall is not None:
                self.progress.advance(self.overall)
        colour = {"skipped": "dim", "unchanged": "dim", "failed": "red"}.get(status, "green")
        extra = f" [dim]{message}[/]" if message else ""
        self.console.print(f"[{colour}]{status:>9}[/] {layer} [dim]({seconds:.1f}s)[/]{extra}")

    def error(self, layer: str | None, message: str) -> None:
        from rich.markup import escape

        where = f"{layer}: " if layer else ""
        self.console.print(f"[bold red]error:[/] {escape(where + message)}")

    def note(self, message: str) -> None:
        from rich.markup import escape

        self.console.print(f"[cyan]note:[/] {escape(message)}")

    def close(self) -> None:
        self.progress.stop()


def _amount_column() -> Any:
    """A rich column: ``3/8`` layers, or ``12.3 MiB/45.6 MiB 20.1 MiB/s`` for byte counts."""
    from rich.progress import ProgressColumn
    from rich.text import Text

    from kernelstacks._support.units import human_bytes

    class AmountColumn(ProgressColumn):
        def render(self, task: Any) -> Text:
            if task.total is None:
                return Text("")
            if task.fields.get("unit") == "bytes":
                speed = f" {human_bytes(task.speed)}/s" if task.speed else ""
                return Text(f"{human_bytes(task.completed)}/{human_bytes(task.total)}{speed}")
            return Text(f"{int(task.completed)}/{int(task.total)}")

    return AmountColumn()

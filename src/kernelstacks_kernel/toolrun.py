"""Run the kernelstacks installation that registered this kernel, and follow its progress.

The kernel's environment has no kernelstacks (and must not): ``KERNELSTACKS_TOOL`` in kernel.json
holds the command line of the tool that wrote the kernel. Its ``--json`` output is one event per
line (event names in :mod:`kernelstacks_kernel.contract`); :class:`ToolRun` parses those lines as
they arrive and hands them to callbacks, so a progress bar and a log can follow a lock or build
live.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kernelstacks_kernel import contract

Event = dict[str, Any]


def tool_command() -> list[str]:
    """The command that runs kernelstacks for this kernel."""
    raw = os.environ.get(contract.ENV_TOOL)
    if raw:
        try:
            cmd = json.loads(raw)
        except ValueError:
            cmd = None
        if isinstance(cmd, list) and cmd:
            return [str(c) for c in cmd]
    found = shutil.which("kernelstacks")
    if found:
        return [found]
    raise RuntimeError(
        "cannot find the kernelstacks tool: this kernel was not registered by kernelstacks "
        f"({contract.ENV_TOOL} is not set) and 'kernelstacks' is not on PATH"
    )


def _tool_env() -> dict[str, str]:
    """The tool runs in its own Python: drop what points it at the kernel's.

    The kernel's PATH starts with its kernelspec's ``bin`` (the stack's pip) and the stack's own
    bin dirs; left there, the tool would find the stack's runtime when it looks for an
    interpreter on the machine.
    """
    env = dict(os.environ)
    for var in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"):
        env.pop(var, None)
    roots = [
        os.path.realpath(value) + os.sep
        for value in (
            os.environ.get(contract.ENV_BUILD_DIR),
            os.environ.get(contract.ENV_KERNEL_DIR),
        )
        if value
    ]
    if roots:
        entries = env.get("PATH", "").split(os.pathsep)
        env["PATH"] = os.pathsep.join(
            e for e in entries if not any(os.path.realpath(e or ".").startswith(r) for r in roots)
        )
    return env


@dataclass
class ToolRun:
    """One run of the tool: events, log lines, exit status."""

    args: list[str]
    on_event: Callable[[Event], None] | None = None
    on_line: Callable[[str], None] | None = None
    events: list[Event] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    returncode: int | None = None
    proc: subprocess.Popen[str] | None = None

    def start(self) -> ToolRun:
        """Start the subprocess (in its own process group so it can be interrupted cleanly)."""
        self.proc = subprocess.Popen(
            [*tool_command(), *self.args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env=_tool_env(),
            start_new_session=True,
        )
        self._stderr = threading.Thread(target=self._read_stderr, daemon=True)
        self._stderr.start()
        return self

    def _read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for line in self.proc.stderr:
            self._line(line.rstrip("\n"))

    def _line(self, text: str) -> None:
        if not text.strip():
            return
        self.log.append(text)
        if self.on_line:
            self.on_line(text)

    def follow(self) -> int:
        """Read events until the tool exits; returns its exit status."""
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.strip()
            if not line:
                continue
            try:
                event = json.loads(line)
            except ValueError:
                self._line(line)
                continue
            if not isinstance(event, dict):
                self._line(line)
                continue
            self.events.append(event)
            if self.on_event:
                self.on_event(event)
        self.returncode = self.proc.wait()
        self._stderr.join(timeout=10)
        return self.returncode

    def run(self) -> int:
        """Start and follow to the end."""
        return self.start().follow()

    def run_in_thread(self, on_done: Callable[[ToolRun], None] | None = None) -> threading.Thread:
        """Run without blocking the caller (the kernel stays responsive)."""

        def target() -> None:
            try:
                self.run()
            except Exception as exc:
                self._line(f"error: {type(exc).__name__}: {exc}")
                self.returncode = -1
            if on_done:
                on_done(self)

        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        return thread

    def interrupt(self) -> None:
        """Stop the tool like Ctrl-C would (it leaves every working layer in place)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)

    @property
    def summary(self) -> Event | None:
        """The final ``done`` event, if the tool got that far."""
        for event in reversed(self.events):
            if event.get(contract.EVENT) == contract.EV_DONE:
                return event
        return None

"""Compile a deploy's bytecode on every core, with each runtime's own interpreter.

Compiling is most of a deploy's CPU time (several times its decompression). A post-install
process per layer, each with its own pool, paid start-up per layer, left cores idle while it
waited for its slowest file, and could not start a layer's bytecode while other layers were
still unpacking without oversubscribing the machine. Here one set of compile servers per
runtime (``postinstall.py --compile-server`` run by that runtime's ``python3``, so the pycs are
its own) lives for the whole deploy, and files go to them in small batches as soon as their
layer is unpacked; a shared count of slots keeps at most ``workers`` batches compiling at
once, whichever runtimes they are for, so unpacking and compiling share the cores.
"""

from __future__ import annotations

import json
import queue
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

from kernelstacks._support.errors import KernelstacksError
from kernelstacks._support.processes import clean_env, end_piped, start_piped
from kernelstacks.distribute.relocation import CURRENT_POSTINSTALL

#: Files per batch: small enough that the last layer's files spread over every worker, large
#: enough that a round trip per batch costs nothing next to compiling it.
BATCH = 16


@dataclass
class _Job:
    """One layer's files: how many batches are still out, and what failed."""

    what: str
    left: int
    errors: list[str] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)
    guard: threading.Lock = field(default_factory=threading.Lock)

    def finished(self, errors: list[str]) -> None:
        """One batch came back (with its write errors)."""
        with self.guard:
            self.errors += errors
            self.left -= 1
            if self.left <= 0:
                self.done.set()

    def wait(self) -> None:
        """Block until every batch is back; raise naming the layer and the first error."""
        self.done.wait()
        if self.errors:
            more = f" (and {len(self.errors) - 1} more)" if len(self.errors) > 1 else ""
            raise KernelstacksError(f"{self.what}: cannot compile bytecode: {self.errors[0]}{more}")


_Batch = tuple[list[str], _Job]


class _Runtime:
    """The compile servers of one interpreter and the batches waiting for them."""

    def __init__(self, python: Path, workers: int, slots: threading.Semaphore) -> None:
        self.python = python
        self.batches: queue.Queue[_Batch | None] = queue.Queue()
        self.slots = slots
        self.broken: str | None = None
        self.procs: list[subprocess.Popen[str]] = []
        self.threads: list[threading.Thread] = []
        cmd = [str(python), "-I", "-S", str(CURRENT_POSTINSTALL), "--compile-server"]
        for _ in range(workers):
            try:
                proc = start_piped(cmd, env=clean_env(bytecode=True))
            except OSError as exc:
                self.close(kill=True)
                raise KernelstacksError(f"cannot run {python} to compile bytecode: {exc}") from None
            self.procs.append(proc)
            thread = threading.Thread(target=self._feed, args=(proc,), daemon=True)
            thread.start()
            self.threads.append(thread)

    def _feed(self, proc: subprocess.Popen[str]) -> None:
        """Hand batches to one server until told to stop (None)."""
        while (item := self.batches.get()) is not None:
            files, job = item
            if self.broken is not None:
                job.finished([self.broken])
                continue
            with self.slots:
                reply = _ask(proc, files)
            if reply is None:
                self.broken = self._stopped(proc)
                job.finished([self.broken])
            else:
                job.finished(reply)

    def _stopped(self, proc: subprocess.Popen[str]) -> str:
        detail = end_piped(proc, kill=True)
        said = f": {detail}" if detail else ""
        return f"the bytecode compiler {self.python} stopped (exit code {proc.returncode}){said}"

    def close(self, *, kill: bool) -> None:
        """Stop the servers (at once with ``kill``) and their feeding threads."""
        for _ in self.threads:
            self.batches.put(None)
        if kill:  # first, so a feeding thread waiting for a reply sees its server gone
            for proc in self.procs:
                end_piped(proc, kill=True)
        for thread in self.threads:
            thread.join()
        if not kill:
            for proc in self.procs:
                end_piped(proc)


def _ask(proc: subprocess.Popen[str], files: list[str]) -> list[str] | None:
    """One batch to a server; its write errors, or None when the server is gone."""
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(json.dumps(files) + "\n")
        proc.stdin.flush()
        line = proc.stdout.readline()
        return [str(error) for error in json.loads(line)] if line else None
    except (OSError, ValueError):
        return None


class BytecodePool:
    """Compile servers for every runtime a deploy needs, ``workers`` batches at a time."""

    def __init__(self, workers: int) -> None:
        self.workers = max(1, workers)
        self._slots = threading.Semaphore(self.workers)
        self._runtimes: dict[Path, _Runtime] = {}
        self._guard = threading.Lock()

    def __enter__(self) -> BytecodePool:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        self.close(kill=kind is not None)

    def compile(self, python: Path, files: list[str], what: str) -> None:
        """Compile ``files`` with ``python`` (a runtime's interpreter); return when done.

        Raises :class:`KernelstacksError` naming ``what`` (the layer) and the first file that
        could not be written, or the server that stopped.
        """
        if not files:
            return
        runtime = self._runtime(python)
        batches = [files[i : i + BATCH] for i in range(0, len(files), BATCH)]
        job = _Job(what, len(batches))
        for batch in batches:
            runtime.batches.put((batch, job))
        job.wait()

    def _runtime(self, python: Path) -> _Runtime:
        with self._guard:
            if python not in self._runtimes:
                self._runtimes[python] = _Runtime(python, self.workers, self._slots)
            return self._runtimes[python]

    def close(self, *, kill: bool = False) -> None:
        """Stop every server; ``kill`` when the deploy failed or was interrupted."""
        with self._guard:
            runtimes, self._runtimes = list(self._runtimes.values()), {}
        for runtime in runtimes:
            runtime.close(kill=kill)

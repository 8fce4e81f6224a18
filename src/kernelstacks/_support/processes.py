"""Running other programs: one environment rule, timeouts, and errors that say what went wrong.

Every subprocess kernelstacks starts (uv, a layer's interpreter, a post-install step, patchelf)
gets its environment from :func:`clean_env` and its failure message from :func:`tail`, so the
rules for what leaks into a child and how a failure reads exist once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from kernelstacks._support.errors import KernelstacksError

#: Variables that would make an interpreter load files that are not its own (or its layers').
LEAKY_VARIABLES = (
    "PYTHONHOME",
    "PYTHONPATH",
    "PYTHONSTARTUP",
    "PYTHONUSERBASE",
    "PYTHONEXECUTABLE",
    "PYTHONSAFEPATH",
    "__PYVENV_LAUNCHER__",
    "VIRTUAL_ENV",
    "CONDA_PREFIX",
)


class ProcessError(KernelstacksError):
    """A program we ran failed; the message names what we were doing and ends with its output."""

    def __init__(self, what: str, detail: str, returncode: int | None = None):
        self.what = what
        self.detail = detail
        self.returncode = returncode
        super().__init__(f"{what} failed: {detail}")


def clean_env(
    extra: Mapping[str, str] | None = None,
    *,
    bytecode: bool = False,
    no_library_path: bool = False,
) -> dict[str, str]:
    """Our environment for a child process, minus what would redirect a Python interpreter.

    The rest passes through (uv needs ``SSL_CERT_FILE`` and proxy settings on our machines).
    ``bytecode`` removes ``PYTHONDONTWRITEBYTECODE`` (compilers must write .pyc files);
    ``no_library_path`` removes ``LD_LIBRARY_PATH``/``LD_PRELOAD`` (checking that a relocated
    runtime finds its own libraries). ``extra`` is applied last.
    """
    env = {k: v for k, v in os.environ.items() if k not in LEAKY_VARIABLES}
    if bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    if no_library_path:
        env.pop("LD_LIBRARY_PATH", None)
        env.pop("LD_PRELOAD", None)
    if extra:
        env.update(extra)
    return env


def tail(text: str | None, count: int = 6) -> str:
    """The last non-empty lines of a program's output: enough to say what went wrong."""
    lines = [line.rstrip() for line in (text or "").strip().splitlines() if line.strip()]
    return "\n".join(lines[-count:]) or "(no output)"


def run(
    cmd: Sequence[str | os.PathLike[str]],
    *,
    what: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float | None = None,
    check: bool = True,
    lines: int = 6,
) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` capturing text output; a failure raises :class:`ProcessError` naming ``what``.

    ``env`` defaults to :func:`clean_env`. A program that cannot start, times out or (with
    ``check``) exits non-zero is reported with the tail of its output, never a traceback.
    """
    args = [os.fspath(c) for c in cmd]
    try:
        proc = captured(
            args, env=dict(env) if env is not None else clean_env(), cwd=cwd, timeout=timeout
        )
    except FileNotFoundError:
        raise ProcessError(what, f"program not found: {args[0]}") from None
    except PermissionError:
        raise ProcessError(what, f"program is not executable: {args[0]}") from None
    except subprocess.TimeoutExpired as exc:
        output = (
            (exc.stderr or b"").decode("utf-8", "replace")
            if isinstance(exc.stderr, bytes)
            else exc.stderr
        )
        raise ProcessError(what, f"timed out after {timeout:g}s\n{tail(output, lines)}") from None
    if check and proc.returncode != 0:
        raise ProcessError(what, tail(proc.stderr or proc.stdout, lines), proc.returncode)
    return proc


# -- children and interruptions -------------------------------------------------------------------

_children: set[subprocess.Popen[str]] = set()
_children_guard = threading.Lock()
#: How long a child gets to stop after SIGTERM before SIGKILL.
GRACE_SECONDS = 3.0


def captured(
    args: Sequence[str],
    *,
    env: Mapping[str, str] | None,
    cwd: Path | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a program to completion, capturing text output; the one place children start.

    Each child is remembered while it runs, so that :func:`stop_children` can end it and
    everything it started (a compile step's worker processes) when we are interrupted, whether
    by Ctrl-C or by ``kill <pid>``. Children stay in our process group, so ``kill -9`` of the
    group (or Ctrl-C in a terminal) still reaches them directly.
    """
    proc = subprocess.Popen(
        args,
        env=dict(env) if env is not None else None,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    with _children_guard:
        _children.add(proc)
    try:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _signal_tree(proc, signal.SIGKILL)
            out, err = proc.communicate()
            raise subprocess.TimeoutExpired(args, timeout or 0, out, err) from None
        except BaseException:
            _stop(proc)
            raise
    finally:
        with _children_guard:
            _children.discard(proc)
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


def start_piped(args: Sequence[str], *, env: Mapping[str, str]) -> subprocess.Popen[str]:
    """Start a long-lived helper that talks over its stdin/stdout (UTF-8 lines).

    Remembered like every child (:func:`stop_children` ends it on an interruption) until
    :func:`end_piped`. Its stderr is kept for the message when it stops unexpectedly.
    """
    proc = subprocess.Popen(
        list(args),
        env=dict(env),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        encoding="utf-8",
    )
    with _children_guard:
        _children.add(proc)
    return proc


def end_piped(proc: subprocess.Popen[str], *, kill: bool = False) -> str:
    """Close a helper's stdin and wait for it (or end it and its children, with ``kill``);
    returns the tail of its stderr."""
    with contextlib.suppress(OSError, ValueError):
        assert proc.stdin is not None
        proc.stdin.close()
    if kill:
        _stop(proc)
    else:
        try:
            proc.wait(GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            _stop(proc)
    try:
        err = proc.stderr.read() if proc.stderr else ""
    except (OSError, ValueError):
        err = ""
    with _children_guard:
        _children.discard(proc)
    return tail(err, 3) if err.strip() else ""


def stop_children() -> int:
    """SIGTERM every running child and its descendants, SIGKILL what is left after a grace period.

    Returns how many children were running. Safe to call from a signal handler: it only sends
    signals and polls.
    """
    with _children_guard:
        running = [p for p in _children if p.poll() is None]
    trees = {proc.pid: _signal_tree(proc, signal.SIGTERM) for proc in running}
    deadline = time.monotonic() + GRACE_SECONDS
    for proc in running:
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
    for pids in trees.values():
        _kill(pids, signal.SIGKILL)  # whatever ignored SIGTERM, grandchildren included
    return len(running)


def _stop(proc: subprocess.Popen[str]) -> None:
    """End one child and everything it started."""
    pids = _signal_tree(proc, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(GRACE_SECONDS)
    _kill(pids, signal.SIGKILL)


def _signal_tree(proc: subprocess.Popen[str], sig: int) -> list[int]:
    """Send ``sig`` to a child and its descendants (found before signalling); their pids."""
    pids = [proc.pid, *_descendants(proc.pid)]
    _kill(pids, sig)
    return pids


def _kill(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _descendants(pid: int) -> list[int]:
    """Processes below ``pid``, from /proc (Linux); none elsewhere, where only it is signalled."""
    children: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def install_interrupt_handlers() -> None:
    """Make SIGTERM behave like Ctrl-C, and make both stop our children at once.

    The handler ends every running child and its descendants (a ``kill <pid>`` of kernelstacks
    alone used to leave uv and compile workers running) and raises KeyboardInterrupt in the
    main thread, where the commands' usual interruption path discards unfinished layers.
    """
    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum: int, frame: object) -> None:
        signal.signal(signum, signal.SIG_IGN)  # a second signal while we stop is not news
        stop_children()
        signal.signal(signum, handler)
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)

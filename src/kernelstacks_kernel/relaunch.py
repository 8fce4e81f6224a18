"""``%venvstacks restart``: the kernel replaces itself in place, so no client sees it die.

A restart by exiting races the next cell (the client sends it before it notices the exit) and
makes JupyterLab show its "kernel died" dialog. Instead the kernel ``exec``s a fresh interpreter
in the same process: same pid, same ports, same connection file. ZeroMQ clients reconnect by
themselves and keep what they send meanwhile, so nothing the client sends *after* the exec is
lost; what matters is the restart cell itself and requests already queued in the old process.

- Automated runs (nbclient, nbconvert, papermill: they send ``allow_stdin=False`` and one cell at
  a time): the old process hands the restart cell over to the new one, which sends its reply once
  the client has reconnected. The next cell runs on the new kernel.
- Interactive frontends (JupyterLab, Notebook 7, VS Code) may have queued later cells already
  (Run All): the cell fails with one line saying the kernel restarts and what to run again, so
  the kernel aborts the queued cells as after any error, then the process is replaced.

The launcher (:mod:`kernelstacks_kernel.launch`) records how this kernel was started; kernels
not started by it are asked to restart from the frontend.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import threading
import time
from typing import Any

#: Set for the new process: the JSON file with the restart cell's request, or ``-`` (none).
HANDOFF_ENV = "KERNELSTACKS_RESTART_HANDOFF"
NO_HANDOFF = "-"
#: How long the new process waits for its kernel to start before giving up.
RECONNECT_TIMEOUT = 120.0
#: Longest wait for ipykernel to finish aborting queued cells (interactive restarts).
ABORT_TIMEOUT = 2.0
#: How long late requests are still answered "aborted" before the process is replaced.
ABORT_GRACE = 1.0
#: Time given to clients to reconnect after the kernel started (they retry every 100 ms).
RECONNECT_MARGIN = 1.0

_LAUNCH: dict[str, Any] = {}


def remember(argv: list[str]) -> None:
    """Record how to start this kernel again (called by the launcher before ipykernel runs)."""
    exact = getattr(sys, "orig_argv", None)  # 3.10+: the interpreter's own argv, -X options too
    if not exact:
        xopts = [f"-X{k}" if v is True else f"-X{k}={v}" for k, v in sys._xoptions.items()]
        exact = [sys.executable, *xopts, "-m", "kernelstacks_kernel.launch", *argv]
    _LAUNCH.update(argv=list(exact), env=dict(os.environ), cwd=os.getcwd())
    _LAUNCH["env"].pop(HANDOFF_ENV, None)


def launched_here() -> bool:
    """Whether this kernel was started by the kernelstacks launcher (so it can re-exec)."""
    return bool(_LAUNCH)


def _exec(handoff: str, settle: float = 0.3) -> None:
    """Replace this process with a fresh kernel (never returns)."""
    env = dict(_LAUNCH["env"])
    env[HANDOFF_ENV] = handoff
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed or odd stream must not stop it
            stream.flush()
    time.sleep(settle)  # let the IOPub thread and ZeroMQ send what was flushed
    with contextlib.suppress(OSError):
        os.chdir(_LAUNCH["cwd"])
    os.execve(sys.executable, _LAUNCH["argv"], env)


def _exec_after_abort(kernel: Any) -> None:
    """Replace the process once ipykernel has aborted the cells queued behind the restart cell.

    The restart cell fails, so ipykernel answers every queued request with ``aborted``: its
    ``_aborting`` flag goes up, then down (observed: a poll could miss a short abort). Requests
    that arrive late (a server forwards Run All's cells one by one) must not run on the old
    kernel either, so the flag is raised again and kept up for :data:`ABORT_GRACE`; then the
    process is replaced. What is sent after that waits in the client for the new process.
    """
    done = threading.Event()

    def on_change(change: dict[str, Any]) -> None:
        if not change["new"] and not done.is_set():
            done.set()
            kernel._aborting = True  # keep refusing requests until the process is replaced

    with contextlib.suppress(Exception):  # not a traitlets kernel: the timeout does it
        kernel.observe(on_change, names="_aborting")

    def wait_and_exec() -> None:
        done.wait(ABORT_TIMEOUT)
        time.sleep(ABORT_GRACE)
        _exec(NO_HANDOFF, settle=0.2)

    threading.Thread(target=wait_and_exec, daemon=True).start()


def _request(kernel: Any) -> tuple[dict[str, Any], list[bytes]]:
    """The execute request being run (parent message) and its routing identities."""
    parent = kernel.get_parent("shell")
    idents = kernel._parent_ident["shell"]  # ipykernel 6 and 7 (kept for compatibility)
    return parent, list(idents) if isinstance(idents, list) else [idents]


def restart(kernel: Any) -> str:
    """Restart now; returns the message when the run must stop (interactive frontends).

    Automated runs never return: the process is replaced and the new one answers this cell.
    """
    if not launched_here() or kernel is None:
        raise RuntimeError(
            "this kernel was not started by the kernelstacks launcher, so it cannot restart "
            "itself: use Kernel > Restart Kernel (or register the kernel again)"
        )
    parent, idents = _request(kernel)
    if parent.get("content", {}).get("allow_stdin", True):
        _exec_after_abort(kernel)
        return (
            "restarting this kernel on the rebuilt layers now; the run stops here: run the "
            "cells below this one again once it is back (they run on the restarted kernel)"
        )
    shell = kernel.shell
    handoff = {
        "parent": parent.get("header", {}),
        "idents": [bytes(i).hex() for i in idents],
        "execution_count": int(shell.execution_count),
    }
    fd, path = tempfile.mkstemp(prefix="kernelstacks-restart-", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(handoff, fh, default=str)
    _exec(path)
    return ""  # not reached


# -- the new process ---------------------------------------------------------------------------


def resume(shell: Any) -> None:
    """In a freshly exec'd kernel: answer the restart cell the old process handed over."""
    path = os.environ.pop(HANDOFF_ENV, None)
    kernel = getattr(shell, "kernel", None)
    if path is None or kernel is None:
        return  # a normal start
    handoff: dict[str, Any] | None = None
    if path != NO_HANDOFF:
        try:
            with open(path, encoding="utf-8") as fh:
                handoff = json.load(fh)
            os.unlink(path)
        except (OSError, ValueError):
            handoff = None
        if handoff:
            shell.execution_count = int(handoff.get("execution_count", 0)) + 1
    threading.Thread(target=_answer, args=(kernel, handoff), daemon=True).start()


def _answer(kernel: Any, handoff: dict[str, Any] | None) -> None:
    """Reply to the handed-over restart cell once clients are back; then report idle.

    ZeroMQ clients retry a lost connection every 100 ms, so they are back within moments of the
    new process binding its ports, which happens before extensions load; a reply sent before a
    client is back would be dropped, so the answer waits for the kernel's loop and a margin.
    """
    deadline = time.monotonic() + RECONNECT_TIMEOUT
    while getattr(kernel, "io_loop", None) is None:  # the kernel's loop starts after init
        if time.monotonic() > deadline:
            return
        time.sleep(0.05)
    time.sleep(RECONNECT_MARGIN)
    session = kernel.session
    if handoff is None:
        session.send(kernel.iopub_socket, "status", {"execution_state": "idle"})
        return
    parent = {"header": handoff.get("parent", {})}
    count = int(handoff.get("execution_count", 0))
    text = f"Kernel restarted (pid {os.getpid()}): it now runs on the rebuilt layers.\n"
    topic = kernel._topic if hasattr(kernel, "_topic") else (lambda t: t.encode())
    session.send(
        kernel.iopub_socket,
        "stream",
        {"name": "stdout", "text": text},
        parent,
        ident=topic("stream"),
    )
    reply = {"status": "ok", "execution_count": count, "user_expressions": {}, "payload": []}
    idents = [bytes.fromhex(i) for i in handoff.get("idents", [])]
    channel = getattr(kernel, "shell_channel_thread", None)
    loop = channel.io_loop if channel is not None else kernel.io_loop

    def send_reply() -> None:
        session.send(kernel.shell_stream, "execute_reply", reply, parent, ident=idents)

    loop.add_callback(send_reply)
    time.sleep(0.2)
    session.send(
        kernel.iopub_socket, "status", {"execution_state": "idle"}, parent, ident=topic("status")
    )

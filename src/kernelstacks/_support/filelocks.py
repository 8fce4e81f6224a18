"""Serialise commands that change the same thing (a stack's locks, a build dir, a deployment).

Every user of a lock gets the same waiting message, naming the process that holds it and what
it is doing ("waiting for another kernelstacks (pid 4242) building /srv/stack/_build ..."): the
holder writes that into ``<lock>.owner`` once it has the lock. ``lock``, ``build`` and
``publish`` of one stack all take :func:`stack_lock`, so they never run at once; a command that
takes a lock it already holds (``build --lock-if-needed`` locking first) just goes on.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from kernelstacks._support.errors import KernelstacksError
from kernelstacks._support.paths import ensure_dir, nearest_existing
from kernelstacks_kernel.contract import STATE_DIR

_held: dict[str, int] = {}  # lock paths this process holds, with a count (re-entry)
_held_guard = threading.Lock()


def stack_lock(root: Path) -> Path:
    """The one lock serialising ``lock``, ``build`` and ``publish`` of the stack in ``root``."""
    return Path(root) / STATE_DIR / "stack.lock"


@contextlib.contextmanager
def exclusive(
    path: Path, on_wait: Callable[[str], None], doing: str = "", *, optional: bool = False
) -> Iterator[None]:
    """Hold a file lock; if another process holds it, call ``on_wait`` with who and why, then wait.

    ``doing`` says what we hold it for ("building /srv/stack/_build"); waiters see it. Taking a
    lock this process already holds (from any thread) is immediate. ``optional``: when the lock
    file cannot be created at all (a read-only stack folder that a build only reads), go on
    without it, since nothing could change that folder under us either.
    """
    from filelock import FileLock, Timeout

    key = os.path.abspath(path)
    with _held_guard:
        if key in _held:
            _held[key] += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield
        finally:
            with _held_guard:
                _held[key] -= 1
        return
    if optional and not _can_create(path):
        yield
        return
    ensure_dir(path.parent, "directory for the lock file")
    guard = FileLock(key)
    try:
        try:
            guard.acquire(timeout=0)
        except Timeout:
            on_wait(waiting_message(path))
            guard.acquire()
    except OSError as exc:
        raise KernelstacksError(
            f"cannot take the lock {path}: {exc.strerror or exc} ({path.parent} must be a "
            "writable directory)"
        ) from None
    owner = _owner_file(path)
    try:
        with _held_guard:
            _held[key] = 1
        _write_owner(owner, doing)
        yield
    finally:
        with _held_guard:
            _held.pop(key, None)
        with contextlib.suppress(OSError):
            owner.unlink()
        guard.release()


def waiting_message(path: Path) -> str:
    """What a waiter is told: the holder's pid and what it is doing, as far as it said."""
    try:
        info = json.loads(_owner_file(path).read_text(encoding="utf-8"))
        pid, doing = int(info["pid"]), str(info.get("doing") or "working")
    except (OSError, ValueError, KeyError, TypeError):
        return f"waiting for another kernelstacks holding {path} ..."
    return f"waiting for another kernelstacks (pid {pid}) {doing} ..."


def _can_create(path: Path) -> bool:
    """Whether the lock file exists or could be made (its nearest existing folder is writable)."""
    probe = nearest_existing(path)
    return os.access(probe, os.W_OK) and not _read_only_fs(probe)


def _read_only_fs(path: Path) -> bool:
    """A read-only mount (root passes ``os.access`` checks even there)."""
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        return False


def _owner_file(path: Path) -> Path:
    return path.with_name(path.name + ".owner")


def _write_owner(owner: Path, doing: str) -> None:
    """Say who holds the lock (best effort: a waiter falls back to a plainer message)."""
    with contextlib.suppress(OSError):
        owner.write_text(json.dumps({"pid": os.getpid(), "doing": doing}), encoding="utf-8")

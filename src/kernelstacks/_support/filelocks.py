"""Serialise commands that change the same thing (a stack's locks, a build dir, a deployment)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path


@contextlib.contextmanager
def exclusive(path: Path, on_wait: Callable[[], None]) -> Iterator[None]:
    """Hold a file lock; call ``on_wait`` first if someone else holds it (then wait)."""
    from filelock import FileLock, Timeout

    path.parent.mkdir(parents=True, exist_ok=True)
    guard = FileLock(str(path))
    try:
        guard.acquire(timeout=0)
    except Timeout:
        on_wait()
        guard.acquire()
    try:
        yield
    finally:
        guard.release()

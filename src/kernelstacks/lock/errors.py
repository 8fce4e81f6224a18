"""The one error locking raises, shared by every module of the lock stage."""

from __future__ import annotations

from kernelstacks._support.errors import KernelstacksError


class LockError(KernelstacksError):
    """A layer could not be locked; the message names the layer and what uv objected to."""

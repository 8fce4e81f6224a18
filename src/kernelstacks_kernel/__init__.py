"""Kernel side of kernelstacks: the ``%venvstacks`` magics inside a layered kernel.

This package runs in the *kernel's* interpreter, where kernelstacks itself (uv, typer, rich...)
is not installed and must not be: it uses only the standard library, IPython and (for the
explorer) ipywidgets. Registered kernels load it with ``--ext kernelstacks_kernel`` from a copy
kept next to their ``kernel.json``; in any other IPython, ``%load_ext kernelstacks_kernel`` works
once it is importable. Heavy work (lock, build) runs as a subprocess of the kernelstacks
installation that registered the kernel.
"""

from __future__ import annotations

from typing import Any

__all__ = ["load_ipython_extension", "unload_ipython_extension"]


def load_ipython_extension(ipython: Any) -> None:
    """Register ``%venvstacks`` (IPython calls this for ``%load_ext`` and ``--ext``)."""
    from kernelstacks_kernel.magics import register

    register(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """Nothing to undo: the magic simply stays registered until the kernel restarts."""

"""The ``%venvstacks`` line magic, and ``%pip`` in a layered kernel.

Everything here works with the standard library, IPython and ipywidgets only. Reading commands
(:mod:`.readers`) inspect the layers directly; changing commands (:mod:`.changers`) run the
kernelstacks tool that registered this kernel. A failure raises
:class:`~kernelstacks_kernel.display.VenvstacksError`: one readable line, and the cell fails.
"""

from __future__ import annotations

import difflib
import shlex
from typing import Any

from kernelstacks_kernel import changers, readers  # noqa: F401 - they register the subcommands
from kernelstacks_kernel.chain import current_chain
from kernelstacks_kernel.commands import SUBCOMMANDS
from kernelstacks_kernel.display import VenvstacksError


def venvstacks(line: str) -> None:
    """%venvstacks [show|packages|why|diff|lock|build|add|remove|restart|explore|help]."""
    try:
        argv = shlex.split(line)
    except ValueError as exc:
        raise VenvstacksError(f"cannot parse arguments: {exc}") from None
    name, rest = (argv[0], argv[1:]) if argv else ("show", [])
    if name not in SUBCOMMANDS:
        raise VenvstacksError(unknown_subcommand(name))
    handler, parser = SUBCOMMANDS[name]
    try:
        handler(parser.parse_args(rest))
    except VenvstacksError:
        raise
    except (ValueError, RuntimeError, OSError) as exc:
        raise VenvstacksError(f"{name} failed: {exc}") from None
    except Exception as exc:
        raise VenvstacksError(f"{name} failed: {type(exc).__name__}: {exc}") from None


def unknown_subcommand(name: str) -> str:
    """The one-line error for a mistyped subcommand: the closest name first, then all of them."""
    known = sorted(SUBCOMMANDS)
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    hint = f"; did you mean '%venvstacks {close[0]}'?" if close else ""
    return f"unknown subcommand '{name}'{hint} (known: {', '.join(known)})"


def pip(line: str) -> None:
    """%pip in a layered kernel: read-only commands show the stack, the rest say what to do."""
    from kernelstacks_kernel.pipshim import run

    try:
        args = shlex.split(line)
    except ValueError as exc:
        raise VenvstacksError(f"cannot parse arguments: {exc}") from None
    status, out, err = run(args)
    if out:
        print(out, end="" if out.endswith("\n") else "\n")
    if status != 0:
        raise VenvstacksError(err.strip() or f"pip {line} failed")
    if err:
        print(err, end="")


def register(ipython: Any) -> None:
    """Register the magics; finish a restart if this kernel was just relaunched."""
    from kernelstacks_kernel import relaunch

    ipython.register_magic_function(venvstacks, magic_kind="line", magic_name="venvstacks")
    if current_chain():
        ipython.register_magic_function(pip, magic_kind="line", magic_name="pip")
    relaunch.resume(ipython)

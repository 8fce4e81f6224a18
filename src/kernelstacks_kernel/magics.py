"""The ``%venvstacks`` line magic and its subcommands."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable

from kernelstacks_kernel import display
from kernelstacks_kernel.chain import current_chain

SUBCOMMANDS: dict[str, Callable[[list[str]], None]] = {}


def subcommand(name: str) -> Callable[[Callable[[list[str]], None]], Callable[[list[str]], None]]:
    """Register a ``%venvstacks <name>`` handler."""

    def wrap(func: Callable[[list[str]], None]) -> Callable[[list[str]], None]:
        SUBCOMMANDS[name] = func
        return func

    return wrap


@subcommand("show")
def show(args: list[str]) -> None:
    """The chain of layers this kernel runs on: app, frameworks, runtime."""
    chain = current_chain()
    if not chain:
        display.error_line(
            f"this kernel ({sys.prefix}) is not a kernelstacks layer: no layer metadata found"
        )
        return
    rows = [
        [
            layer.name,
            layer.kind,
            layer.lock_version if layer.lock_version is not None else "",
            layer.py_version,
            layer.path if layer.present else f"MISSING: {layer.path}",
        ]
        for layer in chain
    ]
    title = f"kernelstacks chain of {chain[0].name} (Python {chain[0].py_version})"
    data = {"layers": [layer.as_dict() for layer in chain]}
    display.publish(
        display.table_bundle(title, ["layer", "kind", "lock", "python", "path"], rows, data, 0)
    )


def venvstacks(line: str) -> None:
    """%venvstacks [show|...]: inspect (and later rebuild) this kernel's layer stack."""
    try:
        argv = shlex.split(line)
    except ValueError as exc:
        display.error_line(f"cannot parse arguments: {exc}")
        return
    name, args = (argv[0], argv[1:]) if argv else ("show", [])
    handler = SUBCOMMANDS.get(name)
    if handler is None:
        known = ", ".join(sorted(SUBCOMMANDS))
        display.error_line(f"unknown subcommand '{name}' (known: {known})")
        return
    try:
        handler(args)
    except Exception as exc:
        display.error_line(f"{name} failed: {type(exc).__name__}: {exc}")


def register(ipython) -> None:
    """Register the magic on an IPython shell."""
    ipython.register_magic_function(venvstacks, magic_kind="line", magic_name="venvstacks")

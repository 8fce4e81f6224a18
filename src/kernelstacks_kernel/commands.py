"""The ``%venvstacks`` subcommand registry: one argument parser and one handler per name.

:mod:`.readers` (show, packages, why, diff) and :mod:`.changers` (lock, build, add, remove,
restart, explore, help) register their handlers here; :mod:`.magics` dispatches to them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from kernelstacks_kernel.chain import LayerInfo, current_chain
from kernelstacks_kernel.display import VenvstacksError

Handler = Callable[[argparse.Namespace], None]
SUBCOMMANDS: dict[str, tuple[Handler, argparse.ArgumentParser]] = {}


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so errors become one readable line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise VenvstacksError(f"{self.prog}: {message}")


class Subcommand:
    """A ``%venvstacks <name>`` subcommand: its parser now, its handler when it decorates one."""

    def __init__(self, name: str, help_text: str) -> None:
        self.name = name
        self.parser = _Parser(prog=f"%venvstacks {name}", description=help_text, add_help=False)

    def __call__(self, func: Handler) -> Handler:
        """Register ``func`` as the handler (used as a decorator)."""
        SUBCOMMANDS[self.name] = (func, self.parser)
        return func


def subcommand(name: str, help_text: str, json_option: bool = False) -> Subcommand:
    """Register a ``%venvstacks <name>`` handler with its own parser (``--json`` if asked)."""
    command = Subcommand(name, help_text)
    if json_option:
        command.parser.add_argument(
            "--json", action="store_true", help="the data as JSON instead of a table"
        )
    return command


def require_chain() -> list[LayerInfo]:
    """This kernel's layers, or a clear error when it does not run on kernelstacks layers."""
    chain = current_chain()
    if not chain:
        raise VenvstacksError(
            f"this kernel ({sys.prefix}) is not a kernelstacks layer: no layer metadata found"
        )
    return chain

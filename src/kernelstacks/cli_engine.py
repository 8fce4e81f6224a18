"""CLI commands of the engine: demo (lock/build/run land with the engine)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kernelstacks.errors import KernelstacksError


def register(app: typer.Typer) -> None:
    """Add the engine's commands to the root app."""
    app.command()(demo)


def demo(
    directory: Annotated[
        Path | None,
        typer.Option("--dir", help="Where to write the demo stack (default: per-user data dir)."),
    ] = None,
) -> None:
    """Write the embedded demo stack and show it."""
    from kernelstacks.cli import _console, report_error
    from kernelstacks.demo_stack import write_demo
    from kernelstacks.show import render_tree
    from kernelstacks.spec import load_spec

    try:
        spec_path = write_demo(directory)
        stack = load_spec(spec_path)
    except KernelstacksError as exc:
        report_error(exc)
        raise typer.Exit(1) from None
    console = _console()
    console.print(f"Demo stack written to [bold]{spec_path}[/]")
    console.print(render_tree(stack, list(stack.layers.values())))

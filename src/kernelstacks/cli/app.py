"""The ``kernelstacks`` command line (typer).

Commands import their machinery lazily so ``kernelstacks --help`` and ``show`` stay fast, and
every :class:`~kernelstacks.errors.KernelstacksError` becomes a readable message with a non-zero
exit status instead of a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from kernelstacks import __version__
from kernelstacks._support.errors import KernelstacksError, SpecError

app = typer.Typer(
    name="kernelstacks",
    help="Build layered Python environment stacks (venvstacks.toml) and use them as Jupyter "
    "kernels.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

SpecArg = Annotated[Path, typer.Argument(help="Stack file (venvstacks.toml).", show_default=False)]
IncludeOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--include",
        "-i",
        help="Only layers matching this pattern (plus what they need and what needs them). "
        "Repeatable.",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def report_error(exc: KernelstacksError, as_json: bool = False) -> None:
    """Print a user-facing error: JSON on stdout for ``--json``, else red text on stderr."""
    if as_json:
        problems = (
            [p.as_dict() for p in exc.problems]
            if isinstance(exc, SpecError)
            else [{"message": str(exc)}]
        )
        print(json.dumps({"error": str(exc), "problems": problems}, indent=2))
        return
    console = _console(stderr=True)
    from rich.markup import escape

    if isinstance(exc, SpecError):
        count = len(exc.problems)
        console.print(f"[bold red]error:[/] {count} problem{'s' * (count != 1)} in the stack file")
        for problem in exc.problems:
            console.print(f"  [red]•[/] {escape(str(problem))}")
    else:
        console.print(f"[bold red]error:[/] {escape(str(exc))}")


def version_callback(value: bool) -> None:
    """``--version``."""
    if value:
        print(f"kernelstacks {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=version_callback, is_eager=True, help="Show version."),
    ] = None,
) -> None:
    """Build layered Python environment stacks and use them as Jupyter kernels."""


@app.command()
def show(spec: SpecArg, include: IncludeOpt = None, json_output: JsonOpt = False) -> None:
    """Show the layers of a stack: runtimes, frameworks, applications and their lower layers."""
    from kernelstacks.cli.show import render_tree, stack_record
    from kernelstacks.spec import load_spec

    try:
        stack = load_spec(spec)
        layers = stack.select(include)
    except KernelstacksError as exc:
        report_error(exc, json_output)
        raise typer.Exit(2 if isinstance(exc, SpecError) else 1) from None
    if json_output:
        print(json.dumps(stack_record(stack, layers), indent=2))
        return
    console = _console()
    for warning in stack.warnings:
        _console(stderr=True).print(f"[yellow]warning:[/] {warning}")
    console.print(render_tree(stack, layers))


def _register_commands() -> None:
    """Attach commands that live in their own modules."""
    from kernelstacks.cli import distribute as cli_deploy
    from kernelstacks.cli import kernels as cli_kernels
    from kernelstacks.cli import stack as cli_engine

    cli_engine.register(app)
    cli_kernels.register(app)
    cli_deploy.register(app)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    _register_commands()
    try:
        app(args=argv, prog_name="kernelstacks")
    except KernelstacksError as exc:  # commands normally handle these; this is the safety net
        report_error(exc)
        sys.exit(1)
    except KeyboardInterrupt:
        _console(stderr=True).print("[yellow]interrupted[/]")
        sys.exit(130)

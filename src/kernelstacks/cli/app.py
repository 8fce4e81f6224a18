"""The ``kernelstacks`` command line (typer): the root app and its entry point.

Commands live in one module per group (``show``, ``stack`` for lock/build/run, ``edit``,
``demo``, ``kernels``, ``distribute``) and import their machinery lazily, so ``kernelstacks
--help`` and ``show`` stay fast. Every :class:`~kernelstacks._support.errors.KernelstacksError`
becomes a readable message with a non-zero exit status instead of a traceback.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from kernelstacks import __version__
from kernelstacks._support.errors import KernelstacksError
from kernelstacks.cli import demo, distribute, edit, kernels, show, stack
from kernelstacks.cli.output import console, report_error

app = typer.Typer(
    name="kernelstacks",
    help="Build layered Python environment stacks (venvstacks.toml) and use them as Jupyter "
    "kernels.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


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


for _module in (show, stack, edit, demo, kernels, distribute):
    _module.register(app)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    from kernelstacks._support.processes import install_interrupt_handlers
    from kernelstacks._support.scheduler import interruption_reported

    install_interrupt_handlers()  # SIGTERM is Ctrl-C; both stop our children at once
    try:
        app(args=argv, prog_name="kernelstacks")
    except SystemExit as exc:  # typer turns Ctrl-C into a silent exit 130
        if exc.code == 130 and not interruption_reported():
            console(stderr=True).print("[yellow]interrupted[/]")
        raise
    except KernelstacksError as exc:  # commands normally handle these; this is the safety net
        report_error(exc)
        sys.exit(1)
    except KeyboardInterrupt:
        console(stderr=True).print("[yellow]interrupted[/]")
        sys.exit(130)
    except OSError as exc:  # a file system refusal we did not foresee: still no traceback
        where = f" ({exc.filename})" if exc.filename else ""
        report_error(KernelstacksError(f"{exc.strerror or exc}{where}"))
        sys.exit(1)

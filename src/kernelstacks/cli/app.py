"""The ``kernelstacks`` command line (typer): the root app and its entry point.

Commands live in one module per group (``show``, ``stack`` for lock/build/run, ``edit``,
``demo``, ``kernels``, ``distribute``) and import their machinery lazily, so ``kernelstacks
--help`` and ``show`` stay fast. Every :class:`~kernelstacks._support.errors.KernelstacksError`
becomes a readable message with a non-zero exit status instead of a traceback.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from kernelstacks import __version__
from kernelstacks._support.errors import KernelstacksError
from kernelstacks.cli import demo, distribute, edit, kernels, show, stack
from kernelstacks.cli.output import console, report_error, set_verbosity

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
        typer.Option(
            "--version", "-V", callback=version_callback, is_eager=True, help="Show the version."
        ),
    ] = None,
    verbose: Annotated[
        int,
        typer.Option(
            "--verbose", "-v", count=True, help="Say every step of every layer (repeatable)."
        ),
    ] = 0,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Only report errors (and what was asked for).")
    ] = False,
) -> None:
    """Build layered Python environment stacks and use them as Jupyter kernels.

    Commands and options of venvstacks 0.8 work the same way here (exit status 1 for a bad stack
    file or a failed operation, 2 for a command line error).
    """
    set_verbosity(-1 if quiet else verbose)


for _module in (show, stack, edit, demo, kernels, distribute):
    _module.register(app)


def tidy_help(command: Any) -> Any:
    """Flags and counters show no type in ``--help`` (typer would print ``<bool>``/``<int>``).

    Applied to every command and subcommand, the help flag included, so the help reads like a
    well-kept CLI: options that take a value show their metavar (SPEC, DIR, PATTERN...).
    """
    # typer ships its own copy of click: its classes are duck-typed here, not imported.
    help_option = command.get_help_option(command.context_class(command))
    for param in [*command.params, *([help_option] if help_option else [])]:
        flag = getattr(param, "is_flag", False) or getattr(param, "count", False)
        if flag and param.metavar is None:
            param.metavar = ""
        elif param.param_type_name == "argument":
            _tidy_argument(param)
    _quiet_negatives(command)
    for sub in getattr(command, "commands", {}).values():
        tidy_help(sub)
    return command


def _quiet_negatives(command: Any) -> None:
    """Off-by-default flags keep venvstacks' ``--no-X`` form but do not show it in ``--help``.

    ``--show/--no-show`` must parse (venvstacks scripts may say ``--no-show``), yet a column of
    ``--no-`` forms and ``[default: no-show]`` would bury the options; the epilog says they exist.
    Negatives that turn off something that is on (``--no-index``, ``--no-build``) stay listed.
    """
    quiet = [
        param
        for param in command.params
        if getattr(param, "is_flag", False)
        and param.default is False
        and param.secondary_opts == [f"--no-{param.opts[-1].removeprefix('--')}"]
    ]
    if not quiet:
        return
    for param in quiet:
        param.show_default = False
    render = command.format_help

    def format_help(ctx: Any, formatter: Any) -> None:
        saved = [param.secondary_opts for param in quiet]
        for param in quiet:
            param.secondary_opts = []
        try:
            render(ctx, formatter)
        finally:
            for param, opts in zip(quiet, saved, strict=True):
                param.secondary_opts = opts

    command.format_help = format_help
    note = "Each on/off option also takes venvstacks' --no- form (e.g. --no-show)."
    command.epilog = f"{command.epilog}\n\n{note}" if command.epilog else note


def _tidy_argument(param: Any) -> None:
    """``SPEC`` rather than ``{SPEC}`` in usage lines, and no ``<path>`` after a metavar."""
    if param.metavar:
        param.display_type_rich = lambda ctx: None

    def usage_name() -> str:
        name = str(param.metavar or param.name).upper()
        if param.nargs != 1 and not name.endswith("..."):
            name += "..."
        return name if param.required else f"[{name}]"

    if hasattr(param, "_usage_display_name"):  # typer's own (it adds braces)
        param._usage_display_name = usage_name


def cli_command() -> Any:
    """The click command behind :data:`app`, with its help tidied (see :func:`tidy_help`)."""
    return tidy_help(typer.main.get_command(app))


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    from kernelstacks._support.processes import install_interrupt_handlers
    from kernelstacks._support.scheduler import interruption_reported

    install_interrupt_handlers()  # SIGTERM is Ctrl-C; both stop our children at once
    try:
        cli_command()(args=argv, prog_name="kernelstacks")
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

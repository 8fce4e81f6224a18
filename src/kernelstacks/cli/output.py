"""How commands talk to people and programs: consoles, errors, summaries, progress reporters.

Every command reports a :class:`~kernelstacks._support.errors.KernelstacksError` through
:func:`report_error` (a readable message, or a JSON document with ``--json``) and exits non-zero,
never with a traceback.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from kernelstacks._support.errors import KernelstacksError, SpecError

if TYPE_CHECKING:
    from rich.console import Console

    from kernelstacks._support.progress import Reporter
    from kernelstacks.spec.model import StackSpec


def console(stderr: bool = False) -> Console:
    """A rich console without syntax highlighting (our output is prose, not code)."""
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
    err = console(stderr=True)
    from rich.markup import escape

    if isinstance(exc, SpecError):
        count = len(exc.problems)
        err.print(f"[bold red]error:[/] {count} problem{'s' * (count != 1)} in the stack file")
        for problem in exc.problems:
            err.print(f"  [red]•[/] {escape(str(problem))}")
    else:
        err.print(f"[bold red]error:[/] {escape(str(exc))}")


def print_summary(action: str, states: dict[str, str], errors: dict[str, str]) -> None:
    """One line counting what happened to the layers, then the failed layers (by name)."""
    from rich.markup import escape

    out = console()
    counts: dict[str, int] = {}
    for state in states.values():
        counts[state] = counts.get(state, 0) + 1
    text = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    colour = "red" if errors else "green"
    out.print(f"[{colour}]{action}:[/] {text or 'nothing to do'}")
    if errors:  # the reporter has printed each error as it happened: name them, once
        console(stderr=True).print(f"[red]  failed:[/] {escape(', '.join(errors))}")


def make_reporter(as_json: bool) -> Reporter:
    """JSON lines for programs, a live display in a terminal, plain lines in logs."""
    from kernelstacks._support.progress import JsonReporter, PlainReporter, RichReporter

    if as_json:
        return JsonReporter()
    return RichReporter() if sys.stderr.isatty() else PlainReporter()


@contextlib.contextmanager
def reporting(as_json: bool) -> Iterator[Any]:
    """A reporter for one command; user errors become a message and exit status 1."""
    reporter = make_reporter(as_json)
    try:
        yield reporter
    except KernelstacksError as exc:
        reporter.close()
        report_error(exc, as_json)
        raise typer.Exit(1) from None
    finally:
        reporter.close()


def load_stack(spec_path: Path, as_json: bool) -> StackSpec:
    """Load and validate a stack file, or report every problem and exit (2 for spec errors).

    The stack's warnings (what venvstacks also warns about) go to stderr, except with ``--json``.
    """
    from kernelstacks.spec import load_spec

    try:
        stack = load_spec(spec_path)
    except KernelstacksError as exc:
        report_error(exc, as_json)
        raise typer.Exit(2 if isinstance(exc, SpecError) else 1) from None
    if not as_json:
        from rich.markup import escape

        for warning in stack.warnings:
            console(stderr=True).print(f"[yellow]warning:[/] {escape(warning)}")
    return stack


def scope_of(user: bool, sys_prefix: bool, prefix: Path | None) -> tuple[str, Path | None]:
    """One of --user, --sys-prefix, --prefix DIR (default --user) for kernel commands."""
    if sum([user, sys_prefix, prefix is not None]) > 1:
        raise KernelstacksError("choose one of --user, --sys-prefix and --prefix DIR")
    if prefix is not None:
        return "prefix", prefix
    return ("sys-prefix", None) if sys_prefix else ("user", None)

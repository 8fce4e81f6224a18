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
from kernelstacks._support.progress import PlainReporter, Reporter

if TYPE_CHECKING:
    from rich.console import Console

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

    if isinstance(exc, SpecError) and len(exc.problems) == 1:
        err.print(f"[bold red]error:[/] {escape(str(exc.problems[0]))}")
    elif isinstance(exc, SpecError):
        err.print(f"[bold red]error:[/] {len(exc.problems)} problems in the stack file")
        for problem in exc.problems:
            err.print(f"  [red]•[/] {escape(str(problem))}")
    else:
        err.print(f"[bold red]error:[/] {escape(str(exc))}")


#: ``-v`` (more) / ``-q`` (less) from the root command: -1 quiet, 0 normal, 1+ verbose.
VERBOSITY = [0]


def set_verbosity(level: int) -> None:
    """Remember ``-v``/``-q`` for every reporter and summary this process makes."""
    VERBOSITY[0] = level


def print_summary(action: str, states: dict[str, str], errors: dict[str, str]) -> None:
    """One line counting what happened to the layers, naming the failed ones.

    The failures' messages were already reported as they happened (errors are said once).
    """
    from rich.markup import escape

    counts: dict[str, int] = {}
    for state in states.values():
        counts[state] = counts.get(state, 0) + 1
    text = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    if errors:
        text += f" (failed layers: {escape(', '.join(errors))})"
    elif VERBOSITY[0] < 0:
        return
    colour = "red" if errors else "green"
    console(stderr=bool(errors)).print(f"[{colour}]{action}:[/] {text or 'nothing to do'}")


def print_published(summary: Any, output_dir: Path) -> None:
    """What ``publish`` and ``build --publish`` end with: counts, each archive's size, where."""
    print_summary("publish", summary.states, {})
    print_archive_sizes(summary.records)
    console().print(f"archives and metadata are in [bold]{output_dir}[/]")


def print_archive_sizes(records: list[dict[str, Any]]) -> None:
    """One line per published archive with its size in human units (none with ``-q``)."""
    from rich.markup import escape

    from kernelstacks._support.units import human_bytes

    if VERBOSITY[0] < 0:
        return
    for record in records:
        size, name = record.get("archive_size"), record.get("archive_name")
        if isinstance(size, int) and name:
            console().print(f"  {escape(str(name))}  [dim]{human_bytes(size)}[/]")


def make_reporter(as_json: bool) -> Reporter:
    """JSON lines for programs, a live display in a terminal, plain lines in logs.

    ``-q`` keeps only errors; ``-v`` adds every step of every layer as a line.
    """
    from kernelstacks._support.progress import JsonReporter, RichReporter

    if as_json:
        return JsonReporter()
    if VERBOSITY[0] < 0:
        return QuietReporter()
    if VERBOSITY[0] > 0:
        return VerboseReporter()
    return RichReporter() if sys.stderr.isatty() else PlainReporter()


class QuietReporter(PlainReporter):
    """``-q``: errors only."""

    def layer_finished(self, layer: str, status: str, seconds: float, message: str = "") -> None:
        """Count the layer, print nothing."""
        Reporter.layer_finished(self, layer, status, seconds, message)

    def note(self, message: str) -> None:
        """Notes are not errors: dropped."""


class VerboseReporter(PlainReporter):
    """``-v``: a line for every layer started and every step, as well as the finished ones."""

    def layer_started(self, layer: str, action: str) -> None:
        """Say what begins."""
        print(f"{action:>9} {layer}", file=sys.stderr, flush=True)

    def step(self, layer: str, message: str) -> None:
        """Say each step."""
        print(f"{'':>9} {layer}: {message}", file=sys.stderr, flush=True)


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
    """Load and validate a stack file, or report every problem and exit with status 1.

    Status 1 is venvstacks' for a bad stack file; 2 stays for usage errors (unknown option).

    The stack's warnings (what venvstacks also warns about) go to stderr, except with ``--json``.
    """
    from kernelstacks.spec import load_spec

    try:
        stack = load_spec(spec_path)
    except KernelstacksError as exc:
        report_error(exc, as_json)
        raise typer.Exit(1) from None
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


def resolve_dir(stack: StackSpec, value: Path | str | None, default: str) -> Path:
    """A ``--build-dir``/``--output-dir``/``--local-wheels`` value: relative to the stack file.

    venvstacks resolves these against the stack file's folder, not the working directory, so a
    script works from anywhere; absolute paths are used as given.
    """
    return (stack.root / Path(value if value is not None else default)).absolute()


def apply_index_options(stack: StackSpec, index: bool, local_wheels: list[str] | None) -> None:
    """``--no-index`` and ``--local-wheels DIR``: uv's own settings, for every uv this process runs.

    uv reads ``UV_NO_INDEX`` and ``UV_FIND_LINKS`` (comma-separated) from the environment, so
    locking and building see them without a second code path.
    """
    import os

    if not index:
        os.environ["UV_NO_INDEX"] = "1"
    dirs = [str(resolve_dir(stack, d, ".")) for d in local_wheels or []]
    for folder in dirs:
        if not Path(folder).is_dir():
            raise KernelstacksError(f"--local-wheels {folder}: no such directory")
    if dirs:
        found = os.environ.get("UV_FIND_LINKS")
        os.environ["UV_FIND_LINKS"] = ",".join([*([found] if found else []), *dirs])

"""Options and arguments shared by several commands, defined once so they read the same."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

SpecArg = Annotated[
    Path,
    typer.Argument(help="Stack file (venvstacks.toml).", show_default=False, metavar="SPEC"),
]
IncludeOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--include",
        "-i",
        metavar="PATTERN",
        rich_help_panel="Layer selection",
        help="Work on the layers matching PATTERN (build name or name, shell-style wildcards). "
        "Repeatable. Without it, every layer.",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
BuildDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--build-dir",
        metavar="DIR",
        help="Where layers are built (default: _build); relative to the stack file's folder.",
    ),
]


def _at_least_one(value: int) -> int:
    """``--jobs`` must be a positive number (said in words, not as ``[x>=1]``)."""
    if value < 1:
        raise typer.BadParameter(f"{value} is not a positive number")
    return value


JobsOpt = Annotated[
    int,
    typer.Option(
        "--jobs",
        "-j",
        metavar="N",
        callback=_at_least_one,
        rich_help_panel="Packages and runtimes",
        help="Layers to work on at the same time (1 or more).",
    ),
]
RuntimeSourceOpt = Annotated[
    Literal["auto", "managed", "local"],
    typer.Option(
        "--runtime-source",
        envvar="KERNELSTACKS_RUNTIME_SOURCE",
        rich_help_panel="Packages and runtimes",
        help="Where runtimes come from: auto (managed when uv may download, else local), "
        "managed (uv's python-build-standalone) or local (an interpreter on this machine).",
    ),
]
PythonOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--python",
        metavar="IMPL=PATH",
        rich_help_panel="Packages and runtimes",
        help="Use this interpreter for a runtime: IMPLEMENTATION=PATH, e.g. "
        "cpython@3.12=/usr/bin/python3.12 (any runtime asking for 3.12 or a 3.12.Z it matches). "
        "Naming an exact pin, cpython@3.12.9=PATH, also accepts another 3.12 patch release at "
        "PATH, with a warning recorded in the runtime's metadata. Repeatable.",
    ),
]
OutputOpt = Annotated[
    Path | None,
    typer.Option(
        "--output-dir",
        "-o",
        metavar="DIR",
        help="Where archives/exports go (default: _artifacts or _export); relative to the stack "
        "file's folder.",
    ),
]
UserOpt = Annotated[bool, typer.Option("--user", help="Per-user Jupyter kernels dir (default).")]
SysPrefixOpt = Annotated[
    bool, typer.Option("--sys-prefix", help="The Jupyter kernels dir of this Python environment.")
]
PrefixOpt = Annotated[
    Path | None,
    typer.Option(
        "--prefix", metavar="DIR", help="Write kernels to DIR/share/jupyter/kernels (as jupyter)."
    ),
]
PrefixesOpt = Annotated[
    list[Path] | None,
    typer.Option("--prefix", metavar="DIR", help="Also look in DIR/share/jupyter. Repeatable."),
]

# -- venvstacks' options (same names and meaning; see docs/coming-from-venvstacks.md) ---------

ShowOpt = Annotated[
    bool,
    typer.Option(
        "--show/--no-show",
        rich_help_panel="Reporting",
        help="Show the stack and the operations selected for each layer, then run.",
    ),
]
ShowOnlyOpt = Annotated[
    bool,
    typer.Option(
        "--show-only/--no-show-only",
        rich_help_panel="Reporting",
        help="Only show the stack and the selected operations; change nothing.",
    ),
]
StatusJsonOpt = Annotated[
    bool,
    typer.Option(
        "--json/--no-json",
        rich_help_panel="Reporting",
        help="Print the stack status as venvstacks' JSON document instead of running (with "
        "--show: print it, then run). kernelstacks' own facts are under its 'kernelstacks' key.",
    ),
]
ProgressJsonOpt = Annotated[
    bool,
    typer.Option(
        "--progress-json",
        rich_help_panel="Reporting",
        help="Report progress as JSON lines (one event per line) for programs, and the "
        "outcome as a last 'done' event.",
    ),
]
AllowMissingOpt = Annotated[
    bool,
    typer.Option(
        "--allow-missing/--no-allow-missing",
        rich_help_panel="Layer selection",
        help="Warn, instead of failing, when an --include or --reset-lock pattern matches no "
        "layer.",
    ),
]
IndexOpt = Annotated[
    bool,
    typer.Option(
        "--index/--no-index",
        rich_help_panel="Packages and runtimes",
        help="Query the package indexes (PyPI and those the stack names); --no-index uses only "
        "--local-wheels and direct references.",
    ),
]
LocalWheelsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--local-wheels",
        metavar="DIR",
        rich_help_panel="Packages and runtimes",
        help="Also look for wheels in DIR (relative to the stack file). Repeatable.",
    ),
]
ResetLockOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--reset-lock",
        metavar="PATTERN",
        rich_help_panel="Layer selection",
        help="Drop the lock of matching layers before locking them, so they are resolved "
        "afresh even with --if-needed / --lock-if-needed. Repeatable; shell-style wildcards.",
    ),
]
CleanOpt = Annotated[
    bool,
    typer.Option(
        "--clean/--no-clean", help="Remove the selected layers' environments before building."
    ),
]
TagOutputsOpt = Annotated[
    bool,
    typer.Option(
        "--tag-outputs/--no-tag-outputs",
        help="Add the platform and archive build number to published names.",
    ),
]
LockDependenciesOpt = Annotated[
    bool,
    typer.Option(
        "--lock-dependencies/--no-lock-dependencies",
        rich_help_panel="Layer selection",
        help="Also relock the layers below included layers (otherwise: only if needed).",
    ),
]
BuildDependenciesOpt = Annotated[
    bool,
    typer.Option(
        "--build-dependencies/--no-build-dependencies",
        rich_help_panel="Layer selection",
        help="Also rebuild the layers below included layers (otherwise: only if needed).",
    ),
]
PublishDependenciesOpt = Annotated[
    bool,
    typer.Option(
        "--publish-dependencies/--no-publish-dependencies",
        rich_help_panel="Layer selection",
        help="Also publish the layers below included layers.",
    ),
]
IncludeDependenciesOpt = Annotated[
    bool | None,
    typer.Option(
        "--include-dependencies/--no-include-dependencies",
        show_default=False,
        rich_help_panel="Layer selection",
        help="Set --lock-, --build- and --publish-dependencies together.",
    ),
]
BuildDerivedOpt = Annotated[
    bool,
    typer.Option(
        "--build-derived/--no-build-derived",
        rich_help_panel="Layer selection",
        help="Also build the layers built on included layers.",
    ),
]
PublishDerivedOpt = Annotated[
    bool,
    typer.Option(
        "--publish-derived/--no-publish-derived",
        rich_help_panel="Layer selection",
        help="Also publish the layers built on included layers.",
    ),
]
ForceOpt = Annotated[
    bool,
    typer.Option(
        "--force/--no-force", help="Write every archive again, even when an identical one is there."
    ),
]
DryRunOpt = Annotated[
    bool,
    typer.Option("--dry-run/--no-dry-run", help="Only list what would be written; write nothing."),
]

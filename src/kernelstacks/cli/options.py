"""Options and arguments shared by several commands, defined once so they read the same."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

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
        help="Only layers matching this pattern (plus what they need and what needs them). "
        "Repeatable.",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
BuildDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--build-dir",
        metavar="DIR",
        help="Where layers are built (default: _build beside the spec).",
    ),
]
JobsOpt = Annotated[
    int,
    typer.Option("--jobs", "-j", min=1, metavar="N", help="Layers to work on at the same time."),
]
RuntimeSourceOpt = Annotated[
    str,
    typer.Option(
        "--runtime-source",
        envvar="KERNELSTACKS_RUNTIME_SOURCE",
        metavar="auto|managed|local",
        help="Where runtimes come from: auto (managed when uv may download, else local), "
        "managed (uv's python-build-standalone) or local (an interpreter on this machine).",
    ),
]
PythonOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--python",
        metavar="IMPL=PATH",
        help="Use this interpreter for a runtime: IMPLEMENTATION=PATH, e.g. "
        "cpython@3.12=/usr/bin/python3.12 (any runtime asking for 3.12 or a 3.12.Z it matches). "
        "Naming an exact pin, cpython@3.12.9=PATH, also accepts another 3.12 patch release at "
        "PATH, with a warning recorded in the runtime's metadata. Repeatable.",
    ),
]
OutputOpt = Annotated[
    Path | None, typer.Option("--output-dir", "-o", metavar="DIR", help="Output directory.")
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

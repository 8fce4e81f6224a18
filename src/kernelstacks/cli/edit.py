"""``kernelstacks add`` and ``remove``: edit a layer's requirements, then relock."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from kernelstacks._support.errors import KernelstacksError
from kernelstacks.cli.options import JsonOpt, SpecArg
from kernelstacks.cli.output import console, load_stack, make_reporter, print_summary, report_error
from kernelstacks.spec.model import StackSpec


def register(app: typer.Typer) -> None:
    """Add ``add`` and ``remove`` to the root app."""
    app.command("add")(add_requirement)
    app.command("remove")(remove_requirement)


LayerOpt = Annotated[
    str | None,
    typer.Option(
        "--layer",
        "-l",
        metavar="LAYER",
        help="Layer to edit (name or build name). Default: the only "
        "application, or KERNELSTACKS_LAYER inside a layered kernel.",
    ),
]


NoLockOpt = Annotated[bool, typer.Option("--no-lock", help="Edit the stack file only.")]


def _edit(
    spec: Path, layer: str | None, add: list[str], remove: list[str], no_lock: bool, as_json: bool
) -> None:
    """Shared body of ``add`` and ``remove``: edit, then relock that layer and its dependents."""
    from kernelstacks.lock.engine import LockOptions, lock_stack
    from kernelstacks.spec.edit import edit_requirements

    stack = load_stack(spec, as_json)
    try:
        name = layer or os.environ.get("KERNELSTACKS_LAYER") or _only_app(stack)
        target, changes = edit_requirements(spec, name, add=add, remove=remove)
        if as_json:
            print(json.dumps({"event": "edited", "layer": target.build_name, "changes": changes}))
        else:
            for change in changes or ["no change"]:
                console().print(f"{target.build_name}: {change}")
        if no_lock or not changes:
            return
        stack = load_stack(spec, as_json)
        reporter = make_reporter(as_json)
        summary = lock_stack(
            stack, [target.build_name], if_needed=True, reporter=reporter, options=LockOptions()
        )
        reporter.close()
        if not as_json:
            print_summary("lock", summary.states, summary.errors)
        if not summary.ok:
            raise typer.Exit(1)
    except KernelstacksError as exc:
        report_error(exc, as_json)
        raise typer.Exit(1) from None


def _only_app(stack: StackSpec) -> str:
    """The stack's only application, when it has exactly one (the default layer to edit)."""
    apps = stack.applications
    if len(apps) == 1:
        return apps[0].build_name
    raise KernelstacksError(
        f"{stack.path}: say which layer to edit with --layer (layers: {', '.join(stack.layers)})"
    )


def add_requirement(
    spec: SpecArg,
    requirements: Annotated[
        list[str], typer.Argument(metavar="REQUIREMENT...", help="PEP 508 requirements to add.")
    ],
    layer: LayerOpt = None,
    no_lock: NoLockOpt = False,
    json_output: JsonOpt = False,
) -> None:
    """Add requirements to a layer (comments kept), then relock it and the layers above it."""
    _edit(spec, layer, requirements, [], no_lock, json_output)


def remove_requirement(
    spec: SpecArg,
    requirements: Annotated[
        list[str], typer.Argument(metavar="NAME...", help="Requirement names to remove.")
    ],
    layer: LayerOpt = None,
    no_lock: NoLockOpt = False,
    json_output: JsonOpt = False,
) -> None:
    """Remove requirements from a layer, then relock it and the layers above it."""
    _edit(spec, layer, [], requirements, no_lock, json_output)

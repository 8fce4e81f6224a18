"""``kernelstacks show`` and the ``--show``/``--show-only``/``--json`` status of other commands.

``show`` prints the stack as a rich tree; ``--json`` prints venvstacks' status document (see
:mod:`kernelstacks.cli.plan`) with kernelstacks' details under its ``kernelstacks`` key.
"""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.markup import escape

from kernelstacks._support.errors import KernelstacksError
from kernelstacks.cli.options import (
    AllowMissingOpt,
    BuildDirOpt,
    IncludeOpt,
    SpecArg,
    StatusJsonOpt,
)
from kernelstacks.cli.output import console, report_error
from kernelstacks.cli.plan import Plan, Selection, make_plan, status_document
from kernelstacks.lock.metadata import LockStatus, lock_status
from kernelstacks.spec.fields import Kind
from kernelstacks.spec.model import LayerSpec, StackSpec


def layer_record(spec: StackSpec, layer: LayerSpec) -> dict[str, Any]:
    """Everything ``show --json`` says about one layer."""
    status = lock_status(spec, layer)
    record: dict[str, Any] = {
        "name": layer.name,
        "build_name": layer.build_name,
        "deploy_name": layer.deploy_name(status.lock_version),
        "kind": layer.kind.value,
        "runtime": layer.runtime_build_name,
        "python_implementation": layer.python_implementation,
        "platforms": list(layer.platforms),
        "lower_layers": list(layer.lower),
        "versioned": layer.versioned,
        "requirements": list(layer.requirements),
        "lock": status.as_dict(),
    }
    if layer.kind is Kind.APPLICATION:
        record["launch_module"] = layer.launch_module_name
    return record


def kernelstacks_record(spec: StackSpec, layers: list[LayerSpec]) -> dict[str, Any]:
    """What kernelstacks adds to venvstacks' document, under its ``kernelstacks`` key."""
    return {
        "spec": str(spec.path),
        "stack": spec.name,
        "layers": [layer_record(spec, layer) for layer in layers],
        "warnings": spec.warnings,
    }


def status_json(spec: StackSpec, plan: Plan, *, report_ops: bool, include_deps: bool) -> str:
    """venvstacks' status document for a plan, plus our ``kernelstacks`` key (sorted keys)."""
    document = status_document(spec, plan, report_ops=report_ops, include_deps=include_deps)
    layers = [layer for name, layer in spec.layers.items() if name in plan.ops]
    document["kernelstacks"] = kernelstacks_record(spec, layers)
    return json.dumps(document, indent=2, sort_keys=True)


def _status_line(entry: dict[str, Any]) -> str:
    """venvstacks' line for a layer: ``*`` when its lock is not valid, deploy name, operations."""
    from rich.markup import escape

    text = ("" if entry["has_valid_lock"] else "*") + entry["name"]
    if entry["install_target"] != entry["name"]:
        text += f" -> {entry['install_target']}"
    if entry.get("selected_operations"):
        text += f" ({', '.join(entry['selected_operations'])})"
    return escape(text)


def status_tree(spec: StackSpec, plan: Plan, *, report_ops: bool, include_deps: bool) -> Any:
    """The status document as venvstacks' tree (``--show``): a line per selected layer."""
    from rich.tree import Tree

    document = status_document(spec, plan, report_ops=report_ops, include_deps=include_deps)
    tree = Tree(document["spec_name"])
    for title in ("Runtimes", "Frameworks", "Applications"):
        branch = tree.add(title)
        for entry in document[title.lower()]:
            node = branch.add(_status_line(entry))
            for dep in entry.get("dependencies", []):
                node.add(_status_line(dep))
    return tree


def show_status(
    spec: StackSpec,
    plan: Plan,
    *,
    show: bool,
    show_only: bool,
    as_json: bool,
    include_deps: bool = False,
) -> bool:
    """``--show``, ``--show-only`` and ``--json`` as venvstacks treats them.

    Returns True when the command must stop here: ``--show-only``, or ``--json`` without
    ``--show`` (a script asking for the document gets it without side effects).
    """
    if not (show or show_only or as_json):
        return False
    if as_json:
        print(status_json(spec, plan, report_ops=True, include_deps=include_deps))
    else:
        wide_console().print(status_tree(spec, plan, report_ops=True, include_deps=include_deps))
    return show_only or (as_json and not show)


def plan_or_stop(
    stack: StackSpec,
    include: list[str] | None,
    selection: Selection,
    allow_missing: bool,
    show: tuple[bool, bool, bool],
    errors_as_json: bool,
) -> tuple[Plan, list[str] | None] | None:
    """Plan a command, then handle ``(--show, --show-only, --json)``; None: stop here.

    Also returns the ``--include`` patterns to hand to the engine: those matching no layer
    (allowed by ``--allow-missing``) are dropped, and when none is left the command has nothing
    to do (an empty list would select every layer).
    """
    try:
        plan = make_plan(stack, include, selection, allow_missing)
    except KernelstacksError as exc:
        report_error(exc, errors_as_json)
        raise typer.Exit(1) from None
    for pattern in plan.unmatched:
        console(stderr=True).print(f"[yellow]warning:[/] no layer matches {pattern!r}")
    if show_status(stack, plan, show=show[0], show_only=show[1], as_json=show[2]):
        return None
    patterns = [p for p in include or [] if p not in plan.unmatched]
    if include and not patterns:
        console(stderr=True).print("nothing to do: no --include pattern matches a layer")
        return None
    return plan, patterns or None


def wide_console() -> Any:
    """stdout's console; never wraps or cuts lines when piped (a pipe has no width)."""
    out = console()
    if not out.is_terminal:
        out.width = 1_000_000
    return out


def _lock_badge(status: LockStatus) -> str:
    if status.state == "valid":
        note = f" [dim]({status.note.partition(' (')[0]})[/]" if status.note else ""
        return f"[green]locked[/]{note}"
    if status.state == "missing":
        return "[yellow]not locked[/]"
    return f"[red]lock {status.state}[/]"


def _label(spec: StackSpec, layer: LayerSpec, any_locks: bool) -> str:
    status = lock_status(spec, layer)
    name = f"[bold]{layer.build_name}[/]"
    if layer.versioned:
        name += f" -> [cyan]{layer.deploy_name(status.lock_version)}[/]"
    extra = f"  [dim]{layer.python_implementation}[/]" if layer.kind is Kind.RUNTIME else ""
    if len(layer.platforms) < 6:
        extra += f"  [dim]platforms: {', '.join(layer.platforms) or 'none'}[/]"
    if any_locks:
        extra += f"  {_lock_badge(status)}"
    return name + extra


def render_tree(spec: StackSpec, layers: list[LayerSpec]) -> Any:
    """A rich Tree: Runtimes, Frameworks, Applications; each with its lower layers in order."""
    from rich.tree import Tree

    any_locks = (spec.root / "requirements").is_dir()
    tree = Tree(f"[bold]{spec.name}[/]  [dim]{spec.path}[/]")
    for kind, title in (
        (Kind.RUNTIME, "Runtimes"),
        (Kind.FRAMEWORK, "Frameworks"),
        (Kind.APPLICATION, "Applications"),
    ):
        members = [layer for layer in layers if layer.kind is kind]
        if not members:
            continue
        branch = tree.add(f"[bold magenta]{title}[/]")
        for layer in members:
            node = branch.add(_label(spec, layer, any_locks))
            if layer.kind is Kind.APPLICATION and layer.launch_module_name:
                node.add(f"[dim]launch module:[/] {layer.launch_module_name}")
            for lower in layer.lower:
                node.add(f"[dim]{lower}[/]")
    return tree


def register(app: typer.Typer) -> None:
    """Add ``show`` to the root app."""
    app.command("show")(show)


def show(
    spec: SpecArg,
    build_dir: BuildDirOpt = None,
    include: IncludeOpt = None,
    allow_missing: AllowMissingOpt = False,
    json_output: StatusJsonOpt = False,
) -> None:
    """Show the layers of a stack: runtimes, frameworks, applications and their lower layers.

    With --json: venvstacks' status document (every layer with its build name, install target,
    lock validity and dependencies), kernelstacks' own details under its 'kernelstacks' key.
    """
    from kernelstacks.spec import load_spec

    del build_dir  # accepted as venvstacks does: what show reports does not depend on it
    try:
        stack = load_spec(spec)
        selection = Selection(lock=True, lock_dependencies=True)
        plan = make_plan(stack, include, selection, allow_missing)
    except KernelstacksError as exc:
        report_error(exc, json_output)
        raise typer.Exit(1) from None
    for pattern in plan.unmatched:
        console(stderr=True).print(f"[yellow]warning:[/] no layer matches {pattern!r}")
    if json_output:
        print(status_json(stack, plan, report_ops=False, include_deps=True))
        return
    for warning in stack.warnings:
        console(stderr=True).print(f"[yellow]warning:[/] {escape(warning)}")
    layers = [layer for name, layer in stack.layers.items() if name in plan.ops]
    wide_console().print(render_tree(stack, layers))

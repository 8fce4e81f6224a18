"""``kernelstacks show``: the stack as a rich tree, or the same facts as JSON."""

from __future__ import annotations

import json
from typing import Any

import typer

from kernelstacks._support.errors import KernelstacksError, SpecError
from kernelstacks.cli.options import IncludeOpt, JsonOpt, SpecArg
from kernelstacks.cli.output import console, report_error
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


def stack_record(spec: StackSpec, layers: list[LayerSpec]) -> dict[str, Any]:
    """The JSON document for ``show --json``."""
    return {
        "spec": str(spec.path),
        "stack": spec.name,
        "layers": [layer_record(spec, layer) for layer in layers],
        "warnings": spec.warnings,
    }


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


def show(spec: SpecArg, include: IncludeOpt = None, json_output: JsonOpt = False) -> None:
    """Show the layers of a stack: runtimes, frameworks, applications and their lower layers."""
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
    for warning in stack.warnings:
        console(stderr=True).print(f"[yellow]warning:[/] {warning}")
    console().print(render_tree(stack, layers))

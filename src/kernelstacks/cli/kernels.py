"""``kernelstacks kernels install|list|remove|prune``: application layers as Jupyter kernels."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from kernelstacks._support.errors import KernelstacksError
from kernelstacks.cli.options import (
    BuildDirOpt,
    IncludeOpt,
    JsonOpt,
    PrefixesOpt,
    PrefixOpt,
    SpecArg,
    SysPrefixOpt,
    UserOpt,
)
from kernelstacks.cli.output import console, load_stack, report_error, scope_of

kernels_app = typer.Typer(
    help="Register application layers as Jupyter kernels, list, remove and prune them.",
    no_args_is_help=True,
)


ProvisionerOpt = Annotated[
    bool | None,
    typer.Option(
        "--provisioner/--no-provisioner",
        help="Name the kernelstacks provisioner in kernel.json (a broken stack then shows a "
        "message instead of a dead kernel). Default: when jupyter_client is installed here.",
    ),
]


def register(app: typer.Typer) -> None:
    """Add ``kernels`` to the root app."""
    app.add_typer(kernels_app, name="kernels")


@kernels_app.command("install")
def install(
    spec: SpecArg,
    include: IncludeOpt = None,
    build_dir: BuildDirOpt = None,
    user: UserOpt = False,
    sys_prefix: SysPrefixOpt = False,
    prefix: PrefixOpt = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace a same-named spec kernelstacks did not write.")
    ] = False,
    provisioner: ProvisionerOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Write a kernelspec for every kernel-enabled application layer of a built stack."""

    stack = load_stack(spec, json_output)
    try:
        scope, where = scope_of(user, sys_prefix, prefix)
        from kernelstacks.jupyter.install import install_kernels

        done = install_kernels(stack, include, build_dir, scope, where, force, provisioner)
    except KernelstacksError as exc:
        report_error(exc, json_output)
        raise typer.Exit(1) from None
    if json_output:
        print(json.dumps([{"name": n, "directory": str(p)} for n, p in done], indent=2))
        return
    for name, path in done:
        console().print(f"[green]installed[/] kernel [bold]{name}[/] in {path}")


@kernels_app.command("list")
def list_(
    prefix: PrefixesOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """The kernels kernelstacks wrote, with stack, layer, lock versions and health."""
    from kernelstacks.jupyter.registry import check_health, find_kernels

    kernels = [check_health(k) for k in find_kernels(prefix)]
    if json_output:
        print(json.dumps([k.as_dict() for k in kernels], indent=2))
        return
    if not kernels:
        console().print("no kernels written by kernelstacks were found")
        return
    from rich.table import Table

    table = Table("kernel", "stack / layer", "lock", "health", "directory")
    for k in kernels:
        d = k.as_dict()
        lock = d["lock_versions"].get(d["layer"])
        health = "[green]ok[/]" if k.health == "ok" else f"[red]broken[/]: {'; '.join(k.problems)}"
        where = f"{d['stack']} / {d['layer']}"
        table.add_row(k.name, where, str(lock or ""), health, str(k.directory))
    out = console()
    if not out.is_terminal:
        out.width = 200
    out.print(table)


@kernels_app.command("remove")
def remove(
    names: Annotated[list[str] | None, typer.Argument(help="Kernel names to remove.")] = None,
    stack_spec: Annotated[
        Path | None, typer.Option("--stack", help="Remove every kernel of this stack file.")
    ] = None,
    prefix: PrefixesOpt = None,
) -> None:
    """Remove kernels kernelstacks wrote (by name, or all of one stack)."""
    from kernelstacks.jupyter.install import remove_kernel
    from kernelstacks.jupyter.registry import find_kernels

    kernels = find_kernels(prefix)
    chosen = [k for k in kernels if k.name in (names or [])]
    if stack_spec is not None:
        spec = str(stack_spec.absolute())
        chosen += [k for k in kernels if k.record.get("spec") == spec and k not in chosen]
    unknown = sorted(set(names or []) - {k.name for k in kernels})
    try:
        if unknown:
            raise KernelstacksError(
                f"no kernel written by kernelstacks is named {', '.join(unknown)} "
                "(see 'kernelstacks kernels list'; other kernelspecs are never touched)"
            )
        if not chosen:
            raise KernelstacksError("nothing to remove: give kernel names or --stack SPEC")
        for kernel in chosen:
            remove_kernel(kernel)
            console().print(f"[green]removed[/] {kernel.name} ({kernel.directory})")
    except KernelstacksError as exc:
        report_error(exc)
        raise typer.Exit(1) from None


@kernels_app.command("prune")
def prune(prefix: PrefixesOpt = None) -> None:
    """Remove kernels whose layers are gone."""
    from kernelstacks.jupyter.install import remove_kernel
    from kernelstacks.jupyter.registry import check_health, find_kernels

    removed = 0
    for kernel in find_kernels(prefix):
        check_health(kernel)
        if any("missing" in p for p in kernel.problems):
            remove_kernel(kernel)
            removed += 1
            console().print(f"[green]pruned[/] {kernel.name}: {'; '.join(kernel.problems)}")
    if not removed:
        console().print("nothing to prune: every kernelstacks kernel still has its layers")

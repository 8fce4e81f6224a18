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
from kernelstacks.cli.output import console, load_stack, report_error, resolve_dir, scope_of
from kernelstacks_kernel.contract import DEFAULT_BUILD_DIR

kernels_app = typer.Typer(
    help="Register application layers as Jupyter kernels, list, remove and prune them.",
    no_args_is_help=True,
)


ProvisionerOpt = Annotated[
    bool,
    typer.Option(
        "--provisioner/--no-provisioner",
        help="Also name the kernelstacks provisioner in kernel.json (an extra for a Jupyter "
        "that has kernelstacks installed; every other Jupyter then hides the kernel).",
    ),
]


def register(app: typer.Typer) -> None:
    """Add ``kernels`` to the root app."""
    app.add_typer(kernels_app, name="kernels")


def _stderr() -> object:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


@kernels_app.command("install")
def install(
    spec: SpecArg,
    include: IncludeOpt = None,
    build_dir: BuildDirOpt = None,
    user: UserOpt = False,
    sys_prefix: SysPrefixOpt = False,
    prefix: PrefixOpt = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Replace a same-named spec kernelstacks did not write; register an app whose "
            "layers are not all built (its kernel then explains what is missing).",
        ),
    ] = False,
    provisioner: ProvisionerOpt = False,
    json_output: JsonOpt = False,
) -> None:
    """Write a kernelspec for every kernel-enabled application layer of a built stack."""
    from kernelstacks.jupyter.install import Target, install_kernels

    stack = load_stack(spec, json_output)
    try:
        scope, where = scope_of(user, sys_prefix, prefix)
        layers = resolve_dir(stack, build_dir, DEFAULT_BUILD_DIR)  # relative to the stack file
        done = install_kernels(stack, include, layers, Target(scope, where), force, provisioner)
    except KernelstacksError as exc:
        report_error(exc, json_output)
        raise typer.Exit(1) from None
    for warning in done.warnings:
        _stderr().print(f"[bold red]WARNING:[/] {warning}")  # type: ignore[attr-defined]
    if json_output:
        rows = [{"name": n, "directory": str(p)} for n, p in done.kernels]
        print(json.dumps(rows, indent=2))
        return
    for name, path in done.kernels:
        console().print(f"[green]installed[/] kernel [bold]{name}[/] in {path}")


@kernels_app.command("list")
def list_(
    prefix: PrefixesOpt = None,
    check: Annotated[
        bool, typer.Option("--check", help="Exit with status 1 when any kernel is broken.")
    ] = False,
    json_output: JsonOpt = False,
) -> None:
    """Every kernel kernelstacks wrote (hidden copies too), with its stack, layer and health."""
    from kernelstacks.jupyter.registry import check_health, find_kernels

    kernels = [check_health(k) for k in find_kernels(prefix)]
    broken = [k for k in kernels if k.health != "ok"]
    if json_output:
        print(json.dumps([k.as_dict() for k in kernels], indent=2))
    elif not kernels:
        console().print(
            f"no kernels written by kernelstacks were found; looked in {_where(prefix)}"
        )
    else:
        _print_table(kernels)
    if check and broken:
        raise typer.Exit(1)


def _print_table(kernels: list) -> None:
    from rich.table import Table

    table = Table("kernel", "stack / layer", "lock", "health", "directory")
    for k in kernels:
        d = k.as_dict()
        lock = d["lock_versions"].get(d["layer"])
        health = "[green]ok[/]" if k.health == "ok" else f"[red]broken[/]: {'; '.join(k.problems)}"
        if k.hidden_by is not None:
            health += f" [yellow](hidden by {k.hidden_by})[/]"
        where = f"{d['stack']} / {d['layer']}"
        table.add_row(k.name, where, str(lock or ""), health, str(k.directory))
    out = console()
    if not out.is_terminal:
        out.width = 200
    out.print(table)


def _where(prefixes: list[Path] | None) -> str:
    """The kernel directories searched, for "none found" messages."""
    from kernelstacks.jupyter.registry import search_dirs

    return ", ".join(str(d) for d in search_dirs(prefixes))


@kernels_app.command("remove")
def remove(
    names: Annotated[
        list[str] | None, typer.Argument(metavar="NAME...", help="Kernel names to remove.")
    ] = None,
    stack_spec: Annotated[
        Path | None,
        typer.Option("--stack", metavar="SPEC", help="Remove every kernel of this stack file."),
    ] = None,
    prefix: PrefixesOpt = None,
) -> None:
    """Remove kernels kernelstacks wrote (by name, or all of one stack), every copy of each."""
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
def prune(
    prefix: PrefixesOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only say what would be removed.")
    ] = False,
) -> None:
    """Remove kernels whose layers are gone (every copy, hidden ones included)."""
    from kernelstacks.jupyter.install import remove_kernel
    from kernelstacks.jupyter.registry import check_health, find_kernels

    removed = 0
    kernels = find_kernels(prefix)
    for kernel in kernels:
        check_health(kernel)
        if any("missing" in p for p in kernel.problems):
            if not dry_run:
                remove_kernel(kernel)
            removed += 1
            verb = "would prune" if dry_run else "pruned"
            console().print(
                f"[green]{verb}[/] {kernel.name} ({kernel.directory}): {'; '.join(kernel.problems)}"
            )
    if not removed and not kernels:
        console().print(f"nothing to prune: no kernelstacks kernels in {_where(prefix)}")
    elif not removed:
        count = f"{len(kernels)} kernelstacks kernel{'s' * (len(kernels) != 1)}"
        console().print(f"nothing to prune: the {count} found still have their layers")

"""``kernelstacks kernels install|list|remove|prune`` and ``build --kernels``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from kernelstacks._support.errors import KernelstacksError
from kernelstacks.cli.app import IncludeOpt, JsonOpt, SpecArg, _console, report_error

kernels_app = typer.Typer(
    help="Register application layers as Jupyter kernels, list, remove and prune them.",
    no_args_is_help=True,
)

UserOpt = Annotated[bool, typer.Option("--user", help="Per-user kernels dir (default).")]
SysPrefixOpt = Annotated[
    bool, typer.Option("--sys-prefix", help="The kernels dir of this Python environment.")
]
PrefixOpt = Annotated[
    Path | None,
    typer.Option("--prefix", help="Write to DIR/share/jupyter/kernels (as jupyter does)."),
]
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


def scope_of(user: bool, sys_prefix: bool, prefix: Path | None) -> tuple[str, Path | None]:
    """One of --user, --sys-prefix, --prefix (default --user)."""
    if sum([user, sys_prefix, prefix is not None]) > 1:
        raise KernelstacksError("choose one of --user, --sys-prefix and --prefix DIR")
    if prefix is not None:
        return "prefix", prefix
    return ("sys-prefix", None) if sys_prefix else ("user", None)


def install_kernels(
    stack, include, build_dir, scope, prefix, force=False, provisioner=None
) -> list[tuple[str, Path]]:
    """Install kernelspecs for the stack's kernel apps; returns (name, directory) pairs."""
    from kernelstacks.build.engine import default_build_dir
    from kernelstacks.jupyter.kernelspecs import install_kernel, kernels_dir, select_kernel_apps

    target = kernels_dir(scope, prefix)
    build = Path(build_dir).absolute() if build_dir else default_build_dir(stack)
    apps = select_kernel_apps(stack, include)
    if not apps:
        raise KernelstacksError(
            f"{stack.path}: no application layer provides ipykernel, so none can be a kernel. "
            'Add "ipykernel" to an application or a framework it uses, or set '
            '[tool.kernelstacks] kernels = ["*"], then build again.'
        )
    done = []
    for app in apps:
        path = install_kernel(stack, app, build, target, force=force, provisioner=provisioner)
        done.append((path.name, path))
    return done


@kernels_app.command("install")
def install(
    spec: SpecArg,
    include: IncludeOpt = None,
    build_dir: Annotated[Path | None, typer.Option("--build-dir")] = None,
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
    from kernelstacks.cli.stack import _load

    stack = _load(spec, json_output)
    try:
        scope, where = scope_of(user, sys_prefix, prefix)
        done = install_kernels(stack, include, build_dir, scope, where, force, provisioner)
    except KernelstacksError as exc:
        report_error(exc, json_output)
        raise typer.Exit(1) from None
    if json_output:
        print(json.dumps([{"name": n, "directory": str(p)} for n, p in done], indent=2))
        return
    for name, path in done:
        _console().print(f"[green]installed[/] kernel [bold]{name}[/] in {path}")


@kernels_app.command("list")
def list_(
    prefix: Annotated[
        list[Path] | None, typer.Option("--prefix", help="Also look in DIR/share/jupyter.")
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """The kernels kernelstacks wrote, with stack, layer, lock versions and health."""
    from kernelstacks.jupyter.kernelspecs import check_health, find_kernels

    kernels = [check_health(k) for k in find_kernels(prefix)]
    if json_output:
        print(json.dumps([k.as_dict() for k in kernels], indent=2))
        return
    if not kernels:
        _console().print("no kernels written by kernelstacks were found")
        return
    from rich.table import Table

    table = Table("kernel", "stack / layer", "lock", "health", "directory")
    for k in kernels:
        d = k.as_dict()
        lock = d["lock_versions"].get(d["layer"])
        health = "[green]ok[/]" if k.health == "ok" else f"[red]broken[/]: {'; '.join(k.problems)}"
        where = f"{d['stack']} / {d['layer']}"
        table.add_row(k.name, where, str(lock or ""), health, str(k.directory))
    console = _console()
    if not console.is_terminal:
        console.width = 200
    console.print(table)


@kernels_app.command("remove")
def remove(
    names: Annotated[list[str] | None, typer.Argument(help="Kernel names to remove.")] = None,
    stack_spec: Annotated[
        Path | None, typer.Option("--stack", help="Remove every kernel of this stack file.")
    ] = None,
    prefix: Annotated[list[Path] | None, typer.Option("--prefix")] = None,
) -> None:
    """Remove kernels kernelstacks wrote (by name, or all of one stack)."""
    from kernelstacks.jupyter.kernelspecs import find_kernels, remove_kernel

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
            _console().print(f"[green]removed[/] {kernel.name} ({kernel.directory})")
    except KernelstacksError as exc:
        report_error(exc)
        raise typer.Exit(1) from None


@kernels_app.command("prune")
def prune(prefix: Annotated[list[Path] | None, typer.Option("--prefix")] = None) -> None:
    """Remove kernels whose layers are gone."""
    from kernelstacks.jupyter.kernelspecs import check_health, find_kernels, remove_kernel

    removed = 0
    for kernel in find_kernels(prefix):
        check_health(kernel)
        if any("missing" in p for p in kernel.problems):
            remove_kernel(kernel)
            removed += 1
            _console().print(f"[green]pruned[/] {kernel.name}: {'; '.join(kernel.problems)}")
    if not removed:
        _console().print("nothing to prune: every kernelstacks kernel still has its layers")

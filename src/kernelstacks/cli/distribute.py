"""CLI: ``publish``, ``export`` (``local-export``) and ``deploy``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from kernelstacks._support.errors import KernelstacksError
from kernelstacks.cli.options import (
    BuildDirOpt,
    IncludeOpt,
    JobsOpt,
    JsonOpt,
    OutputOpt,
    PrefixOpt,
    SpecArg,
    SysPrefixOpt,
    UserOpt,
)
from kernelstacks.cli.output import (
    console,
    load_stack,
    make_reporter,
    print_summary,
    report_error,
    reporting,
    scope_of,
)
from kernelstacks.spec.model import StackSpec


def register(app: typer.Typer) -> None:
    """Add the commands."""
    app.command()(publish)
    app.command()(export)
    app.command("local-export", hidden=True)(export)
    app.command()(deploy)


def _build_dir(stack: StackSpec, build_dir: Path | None) -> Path:
    """``--build-dir`` or the stack's default ``_build``."""
    from kernelstacks.build.state import default_build_dir

    return Path(build_dir).absolute() if build_dir else default_build_dir(stack)


def _check_format(value: str) -> str:
    """``--format`` takes one of the archive formats (a usage error names them otherwise)."""
    if value not in ("tar.xz", "tar.zst"):
        raise typer.BadParameter(f"{value!r} is not tar.xz or tar.zst")
    return value


def publish(
    spec: SpecArg,
    output_dir: OutputOpt = None,
    tag_outputs: Annotated[
        bool, typer.Option("--tag-outputs", help="Add platform and build number to names.")
    ] = False,
    include: IncludeOpt = None,
    build_dir: BuildDirOpt = None,
    jobs: JobsOpt = 2,
    archive_type: Annotated[
        str,
        typer.Option(
            "--format",
            metavar="tar.xz|tar.zst",
            callback=_check_format,
            help="tar.xz (venvstacks' format) or tar.zst (several times faster to write and "
            "unpack, archives about 20% bigger; deployable by kernelstacks and standard tools).",
        ),
    ] = "tar.xz",
    level: Annotated[
        int | None,
        typer.Option(
            "--level",
            metavar="N",
            help="Compression level: xz 0-9, zstd 1-22 (default 6 for both).",
        ),
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """One reproducible archive per built layer plus venvstacks-compatible metadata."""
    from kernelstacks.distribute.publish import publish_stack

    stack = load_stack(spec, json_output)
    out = Path(output_dir or stack.root / "_artifacts").absolute()
    with reporting(json_output) as reporter:
        summary = publish_stack(
            stack,
            include,
            _build_dir(stack, build_dir),
            out,
            tag_outputs=tag_outputs,
            jobs=jobs,
            archive_type=archive_type,
            level=level,
            reporter=reporter,
        )
    if not json_output:
        print_summary("publish", summary.states, {})
        console().print(f"archives and metadata are in [bold]{out}[/]")


def export(
    spec: SpecArg,
    output_dir: OutputOpt = None,
    include: IncludeOpt = None,
    build_dir: BuildDirOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """The deployed layout of a built stack, hard-linked from the build where possible."""
    from kernelstacks.distribute.export import export_stack

    stack = load_stack(spec, json_output)
    out = Path(output_dir or stack.root / "_export").absolute()
    with reporting(json_output) as reporter:
        summary = export_stack(stack, include, _build_dir(stack, build_dir), out, reporter=reporter)
    if not json_output:
        print_summary("export", summary.states, {})
        console().print(f"exported to [bold]{out}[/]")


def deploy(
    source: Annotated[Path | None, typer.Argument(help="Publish output or export dir.")] = None,
    target: Annotated[Path | None, typer.Argument(help="Where to deploy.")] = None,
    relink: Annotated[
        Path | None, typer.Option("--relink", help="Re-run post-install in a moved deployment.")
    ] = None,
    kernels: Annotated[bool, typer.Option("--kernels", help="Register the kernels.")] = False,
    expect_sha256: Annotated[
        Path | None,
        typer.Option("--expect-sha256", help="Archive hashes you trust (sha256sum format)."),
    ] = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="Replace a deployment of another stack.")
    ] = False,
    user: UserOpt = False,
    sys_prefix: SysPrefixOpt = False,
    prefix: PrefixOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Unpack archives (or copy an export) into TARGET; optionally register its kernels."""
    from kernelstacks.distribute.deploy import deploy as run_deploy
    from kernelstacks.distribute.deploy import relink as run_relink
    from kernelstacks.jupyter.deployed import deployed_kernel_plans
    from kernelstacks.jupyter.install import Target, write_kernelspec

    reporter = make_reporter(json_output)
    try:
        if relink is not None:
            done = run_relink(relink, reporter)
            reporter.close()
            if not json_output:
                console().print(f"relinked {len(done)} layers in [bold]{relink}[/]")
            where = relink
        else:
            if source is None or target is None:
                raise KernelstacksError("deploy needs SOURCE and TARGET (or --relink TARGET)")
            summary = run_deploy(
                source, target, reporter=reporter, expect_sha256=expect_sha256, replace=replace
            )
            reporter.close()
            if not json_output:
                print_summary("deploy", summary.states, {})
            where = target
        if kernels or prefix or sys_prefix or user:
            scope, dest = scope_of(user, sys_prefix, prefix)
            for plan in deployed_kernel_plans(Path(where).absolute()):
                path = write_kernelspec(plan, Target(scope, dest), force=False)
                if json_output:
                    print(
                        json.dumps(
                            {"event": "kernel_installed", "name": plan.name, "directory": str(path)}
                        )
                    )
                else:
                    console().print(f"[green]kernel[/] [bold]{plan.name}[/] -> {path}")
    except KernelstacksError as exc:
        reporter.close()
        report_error(exc, json_output)
        raise typer.Exit(1) from None

"""CLI: ``publish``, ``export`` (``local-export``) and ``deploy``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from kernelstacks._support.errors import KernelstacksError
from kernelstacks.cli.options import (
    AllowMissingOpt,
    BuildDirOpt,
    DryRunOpt,
    ForceOpt,
    IncludeOpt,
    JobsOpt,
    JsonOpt,
    OutputOpt,
    PrefixOpt,
    ProgressJsonOpt,
    PublishDependenciesOpt,
    PublishDerivedOpt,
    ShowOnlyOpt,
    ShowOpt,
    SpecArg,
    StatusJsonOpt,
    SysPrefixOpt,
    TagOutputsOpt,
    UserOpt,
)
from kernelstacks.cli.output import (
    console,
    load_stack,
    make_reporter,
    print_published,
    print_summary,
    report_error,
    reporting,
    resolve_dir,
    scope_of,
)
from kernelstacks.cli.plan import Selection
from kernelstacks.cli.show import plan_or_stop
from kernelstacks.spec.model import StackSpec
from kernelstacks_kernel.contract import DEFAULT_BUILD_DIR


def register(app: typer.Typer) -> None:
    """Add the commands."""
    app.command()(publish)
    app.command("local-export")(export)
    app.command("export", hidden=True)(export)
    app.command()(deploy)


def _check_format(value: str) -> str:
    """``--format`` takes one of the archive formats (a usage error names them otherwise)."""
    if value not in ("tar.xz", "tar.zst"):
        raise typer.BadParameter(f"{value!r} is not tar.xz or tar.zst")
    return value


def _output_plan(
    spec: Path,
    include: list[str] | None,
    related: tuple[bool, bool, bool],
    shows: tuple[bool, bool, bool],
    progress_json: bool,
) -> tuple[StackSpec, list[str] | None, set[str]] | None:
    """Load, select the layers to write (venvstacks' rules) and handle --show/--json.

    Returns the stack, the ``--include`` patterns for the engine and the build names that
    venvstacks' rules publish (the included layers, plus dependencies or derived layers on
    request).
    """
    stack = load_stack(spec, shows[2] or progress_json)
    allow_missing, deps, derived = related
    selection = Selection(publish=True, publish_dependencies=deps, publish_derived=derived)
    planned = plan_or_stop(stack, include, selection, allow_missing, shows, progress_json)
    if planned is None:
        return None
    plan, patterns = planned
    return stack, patterns, plan.published()


def _dry_run(
    stack: StackSpec,
    selection: tuple[list[str] | None, set[str] | None],
    dirs: tuple[Path, Path],
    what: str,
    archive: tuple[bool, str] | None,
) -> None:
    """``--dry-run``: venvstacks' request document for what would be written; nothing is."""
    from kernelstacks.cli.dryrun import print_dry_run, request_document

    include, only = selection
    build_dir, out = dirs
    tag_outputs, suffix = archive if archive is not None else (None, "")
    try:
        document = request_document(stack, include, only, build_dir, out, tag_outputs, suffix)
    except KernelstacksError as exc:
        report_error(exc)
        raise typer.Exit(1) from None
    print_dry_run(document, out, what)


def publish(
    spec: SpecArg,
    output_dir: OutputOpt = None,
    tag_outputs: TagOutputsOpt = False,
    force: ForceOpt = False,
    dry_run: DryRunOpt = False,
    include: IncludeOpt = None,
    allow_missing: AllowMissingOpt = False,
    publish_dependencies: PublishDependenciesOpt = False,
    publish_derived: PublishDerivedOpt = False,
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
    show: ShowOpt = False,
    show_only: ShowOnlyOpt = False,
    json_output: StatusJsonOpt = False,
    progress_json: ProgressJsonOpt = False,
) -> None:
    """One reproducible archive per built layer plus venvstacks-compatible metadata."""
    from kernelstacks.distribute.publish import publish_stack

    related = (allow_missing, publish_dependencies, publish_derived)
    planned = _output_plan(spec, include, related, (show, show_only, json_output), progress_json)
    if planned is None:
        return
    stack, patterns, only = planned
    out = resolve_dir(stack, output_dir, "_artifacts")
    built = resolve_dir(stack, build_dir, DEFAULT_BUILD_DIR)
    if dry_run:
        archive = (tag_outputs, f".{archive_type}")
        _dry_run(stack, (patterns, only), (built, out), "archives", archive)
        return
    with reporting(progress_json) as reporter:
        summary = publish_stack(
            stack,
            patterns,
            built,
            out,
            tag_outputs=tag_outputs,
            jobs=jobs,
            archive_type=archive_type,
            level=level,
            reporter=reporter,
            force=force,
            only=only,
        )
    if not progress_json:
        print_published(summary, out)


def export(
    spec: SpecArg,
    output_dir: OutputOpt = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force/--no-force",
            help="Accepted for venvstacks: every export rewrites its layers anyway.",
        ),
    ] = False,
    dry_run: DryRunOpt = False,
    include: IncludeOpt = None,
    allow_missing: AllowMissingOpt = False,
    publish_dependencies: PublishDependenciesOpt = False,
    publish_derived: PublishDerivedOpt = False,
    build_dir: BuildDirOpt = None,
    show: ShowOpt = False,
    show_only: ShowOnlyOpt = False,
    json_output: StatusJsonOpt = False,
    progress_json: ProgressJsonOpt = False,
) -> None:
    """The deployed layout of a built stack, hard-linked from the build where possible."""
    from kernelstacks.distribute.export import export_stack

    del force  # export always writes every selected layer again
    related = (allow_missing, publish_dependencies, publish_derived)
    planned = _output_plan(spec, include, related, (show, show_only, json_output), progress_json)
    if planned is None:
        return
    stack, patterns, _ = planned
    out = resolve_dir(stack, output_dir, "_export")
    built = resolve_dir(stack, build_dir, DEFAULT_BUILD_DIR)
    if dry_run:
        _dry_run(stack, (patterns, None), (built, out), "environments", None)
        return
    with reporting(progress_json) as reporter:
        summary = export_stack(stack, patterns, built, out, reporter=reporter)
    if not progress_json:
        print_summary("export", summary.states, {})
        console().print(f"exported to [bold]{out}[/]")


def deploy(
    source: Annotated[
        Path | None,
        typer.Argument(
            metavar="SOURCE", help="A publish output dir (archives) or a local-export dir."
        ),
    ] = None,
    target: Annotated[
        Path | None, typer.Argument(metavar="TARGET", help="Where to deploy the layers.")
    ] = None,
    relink: Annotated[
        Path | None,
        typer.Option(
            "--relink",
            metavar="DIR",
            help="Re-run every layer's post-install step in a deployment moved to DIR.",
        ),
    ] = None,
    kernels: Annotated[bool, typer.Option("--kernels", help="Register the kernels.")] = False,
    expect_sha256: Annotated[
        Path | None,
        typer.Option(
            "--expect-sha256",
            metavar="FILE",
            help="Archive hashes you trust (sha256sum format), from another channel.",
        ),
    ] = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="Replace a deployment of another stack.")
    ] = False,
    compile_tests: Annotated[
        bool,
        typer.Option(
            "--compile-tests/--no-compile-tests",
            help="Compile the bytecode of test suites (folders named test or tests) too.",
        ),
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
                source,
                target,
                reporter=reporter,
                expect_sha256=expect_sha256,
                replace=replace,
                compile_tests=compile_tests,
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

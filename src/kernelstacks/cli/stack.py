"""``kernelstacks lock``, ``build`` and ``run``: the engine's commands."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from kernelstacks._support.errors import KernelstacksError
from kernelstacks._support.progress import JsonReporter, Reporter
from kernelstacks.cli.options import (
    AllowMissingOpt,
    BuildDependenciesOpt,
    BuildDerivedOpt,
    BuildDirOpt,
    CleanOpt,
    IncludeDependenciesOpt,
    IncludeOpt,
    IndexOpt,
    JobsOpt,
    LocalWheelsOpt,
    LockDependenciesOpt,
    OutputOpt,
    ProgressJsonOpt,
    PublishDependenciesOpt,
    PublishDerivedOpt,
    PythonOpt,
    ResetLockOpt,
    RuntimeSourceOpt,
    ShowOnlyOpt,
    ShowOpt,
    SpecArg,
    StatusJsonOpt,
    TagOutputsOpt,
)
from kernelstacks.cli.output import (
    VERBOSITY,
    apply_index_options,
    console,
    load_stack,
    print_published,
    print_summary,
    report_error,
    reporting,
    resolve_dir,
)
from kernelstacks.cli.plan import Plan, Selection
from kernelstacks.cli.show import plan_or_stop
from kernelstacks.spec.model import StackSpec
from kernelstacks_kernel.contract import DEFAULT_BUILD_DIR


def register(app: typer.Typer) -> None:
    """Add lock, build and run to the root app."""
    app.command()(lock)
    app.command()(build)
    app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(run)


def parse_python_overrides(values: list[str] | None) -> dict[str, Path]:
    """``--python cpython@3.12=/path`` options as a mapping."""
    overrides: dict[str, Path] = {}
    for value in values or []:
        impl, sep, path = value.partition("=")
        if not sep or not impl or not path:
            raise KernelstacksError(
                f"--python {value!r}: expected IMPLEMENTATION=PATH, "
                "e.g. cpython@3.12=/usr/bin/python3.12"
            )
        overrides[impl.strip()] = Path(path).expanduser()
    return overrides


def _reset_locks(stack: StackSpec, plan: Plan, if_needed: bool) -> None:
    """``--reset-lock``: drop the lock of each layer the plan relocks with a reset.

    As in venvstacks, the lock file goes before the layer is locked again, so that even an
    if-needed lock resolves it afresh. A full lock resolves every layer afresh anyway, so then
    the working lock is kept until the new one replaces it.
    """
    from kernelstacks.lock.metadata import lock_path

    if not if_needed:
        return
    for name, ops in plan.ops.items():
        if ops.reset_lock and ops.lock is not False:
            lock_path(stack, stack.layers[name]).unlink(missing_ok=True)


def _related_note(flags: dict[str, bool]) -> None:
    """Say once that kernelstacks' engines carry related layers whatever these flags say."""
    given = [name for name, value in flags.items() if value]
    if given and VERBOSITY[0] >= 0:
        console(stderr=True).print(
            f"[dim]note: {', '.join(given)}: shown in --show/--json as venvstacks selects them; "
            "kernelstacks always locks and builds the layers below an included layer when "
            "needed and the layers built on it (see docs/coming-from-venvstacks.md)[/]"
        )


def lock(
    spec: SpecArg,
    include: IncludeOpt = None,
    if_needed: Annotated[
        bool,
        typer.Option(
            "--if-needed/--no-if-needed", help="Relock only layers whose lock is missing or stale."
        ),
    ] = False,
    reset_lock: ResetLockOpt = None,
    allow_missing: AllowMissingOpt = False,
    lock_dependencies: LockDependenciesOpt = False,
    clean: Annotated[
        bool,
        typer.Option(
            "--clean/--no-clean",
            help="Accepted for venvstacks: kernelstacks locks without creating environments, "
            "so there is nothing to clean.",
        ),
    ] = False,
    build_dir: BuildDirOpt = None,
    index: IndexOpt = True,
    local_wheels: LocalWheelsOpt = None,
    jobs: JobsOpt = 2,
    runtime_source: RuntimeSourceOpt = "auto",
    python: PythonOpt = None,
    show: ShowOpt = False,
    show_only: ShowOnlyOpt = False,
    json_output: StatusJsonOpt = False,
    progress_json: ProgressJsonOpt = False,
) -> None:
    """Lock layers (lower layers first) into requirements/<build-name>/pylock.*.toml."""
    from kernelstacks.lock.engine import LockOptions, lock_stack

    stack = load_stack(spec, json_output or progress_json)
    selection = Selection(lock=None if if_needed else True, reset_lock=reset_lock or [])
    selection.lock_dependencies = lock_dependencies
    flags = (show, show_only, json_output)
    planned = plan_or_stop(stack, include, selection, allow_missing, flags, progress_json)
    if planned is None:
        return
    plan, patterns = planned
    if clean and not progress_json:
        console(stderr=True).print(
            "[dim]note: --clean: kernelstacks locks without creating environments; "
            "nothing to clean[/]"
        )
    _related_note({"--lock-dependencies": lock_dependencies})
    with reporting(progress_json) as reporter:
        apply_index_options(stack, index, local_wheels)
        _reset_locks(stack, plan, if_needed)
        options = LockOptions(
            runtime_source,
            parse_python_overrides(python),
            resolve_dir(stack, build_dir, DEFAULT_BUILD_DIR),
        )
        summary = lock_stack(
            stack, patterns, if_needed=if_needed, jobs=jobs, reporter=reporter, options=options
        )
    if not progress_json:
        print_summary("lock", summary.states, summary.errors)
    if not summary.ok:
        raise typer.Exit(1)


def build(
    spec: SpecArg,
    include: IncludeOpt = None,
    lock_if_needed: Annotated[
        bool,
        typer.Option(
            "--lock-if-needed/--no-lock-if-needed",
            help="First lock the layers whose locks are missing/stale.",
        ),
    ] = False,
    lock_alias: Annotated[
        bool,
        typer.Option("--lock/--no-lock", hidden=True, help="Deprecated alias of --lock-if-needed."),
    ] = False,
    reset_lock: ResetLockOpt = None,
    do_build: Annotated[
        bool,
        typer.Option(
            "--build/--no-build", help="Build the layers (--no-build: only lock/publish)."
        ),
    ] = True,
    publish: Annotated[
        bool,
        typer.Option("--publish/--no-publish", help="Then publish archives of the built layers."),
    ] = False,
    clean: CleanOpt = False,
    allow_missing: AllowMissingOpt = False,
    lock_dependencies: LockDependenciesOpt = False,
    build_dependencies: BuildDependenciesOpt = False,
    publish_dependencies: PublishDependenciesOpt = False,
    include_dependencies: IncludeDependenciesOpt = None,
    build_derived: BuildDerivedOpt = False,
    publish_derived: PublishDerivedOpt = False,
    build_dir: BuildDirOpt = None,
    output_dir: OutputOpt = None,
    tag_outputs: TagOutputsOpt = False,
    index: IndexOpt = True,
    local_wheels: LocalWheelsOpt = None,
    jobs: JobsOpt = 2,
    runtime_source: RuntimeSourceOpt = "auto",
    python: PythonOpt = None,
    kernels: Annotated[
        bool, typer.Option("--kernels", help="Then register kernel-enabled apps as kernels.")
    ] = False,
    kernels_prefix: Annotated[
        Path | None,
        typer.Option(
            "--kernels-prefix",
            metavar="DIR",
            help="With --kernels: write them to DIR/share/jupyter/kernels.",
        ),
    ] = None,
    show: ShowOpt = False,
    show_only: ShowOnlyOpt = False,
    json_output: StatusJsonOpt = False,
    progress_json: ProgressJsonOpt = False,
) -> None:
    """Build layers into the build dir: runtimes, then framework and application venvs.

    With --publish, then write their archives as 'kernelstacks publish' does.
    """
    lock_if_needed = lock_if_needed or lock_alias
    if include_dependencies is not None:
        lock_dependencies = build_dependencies = publish_dependencies = include_dependencies
    stack = load_stack(spec, json_output or progress_json)
    selection = Selection(
        None if lock_if_needed else False, do_build, True, lock_dependencies, build_dependencies
    )
    selection.publish_dependencies, selection.reset_lock = publish_dependencies, reset_lock or []
    selection.build_derived, selection.publish_derived = build_derived, publish_derived
    flags = (show, show_only, json_output)
    planned = plan_or_stop(stack, include, selection, allow_missing, flags, progress_json)
    if planned is None:
        return
    plan, patterns = planned
    _related_note(
        {
            "--lock-dependencies": lock_dependencies,
            "--build-dependencies": build_dependencies,
            "--build-derived": build_derived,
        }
    )
    target = resolve_dir(stack, build_dir, DEFAULT_BUILD_DIR)
    with reporting(progress_json) as reporter:
        apply_index_options(stack, index, local_wheels)
        if lock_if_needed:
            _reset_locks(stack, plan, True)
        if clean and do_build:
            _clean(target, plan)
        run = BuildRun(lock_if_needed, target, jobs, runtime_source, python, do_build)
        ok = run_build(stack, patterns, run, reporter, progress_json)
        if ok and publish:
            out = resolve_dir(stack, output_dir, "_artifacts")
            only = plan.published()
            publish_built(
                stack, (patterns, only), target, out, (tag_outputs, clean), jobs, reporter
            )
        elif ok and not progress_json and VERBOSITY[0] >= 0:
            console().print("[dim]no archives written (add --publish to write them)[/]")
        if ok and (kernels or kernels_prefix):
            register_built_kernels(stack, patterns, target, kernels_prefix, progress_json)
    if not ok:
        raise typer.Exit(1)


def _clean(build_dir: Path, plan: Plan) -> None:
    """``--clean``: remove the environments of the layers selected for building.

    Through the swap module's ``discard`` (renamed aside first), so a killed ``--clean`` never
    leaves a half-deleted layer that looks whole.
    """
    from kernelstacks._support.swap import discard

    for name, ops in plan.ops.items():
        if ops.build is True:
            discard(build_dir / name)


def publish_built(
    stack: StackSpec,
    selection: tuple[list[str] | None, set[str]],
    build_dir: Path,
    output_dir: Path,
    tag_and_force: tuple[bool, bool],
    jobs: int,
    reporter: Reporter,
) -> None:
    """``build --publish``: the archives of the built layers (``--clean`` forces new ones)."""
    from kernelstacks.distribute.publish import publish_stack

    tag_outputs, force = tag_and_force
    include, only = selection
    summary = publish_stack(
        stack, include, build_dir, output_dir, tag_outputs=tag_outputs, jobs=jobs,
        reporter=reporter, force=force, only=only,
    )  # fmt: skip
    reporter.close()
    if not isinstance(reporter, JsonReporter):
        print_published(summary, output_dir)


def register_built_kernels(
    stack: StackSpec,
    include: list[str] | None,
    build_dir: Path | None,
    prefix: Path | None,
    as_json: bool,
) -> None:
    """``build --kernels``: register the kernels after a successful build."""
    from kernelstacks.jupyter.install import Target, install_kernels

    target = Target("prefix", prefix) if prefix else Target("user")
    done = install_kernels(stack, include, build_dir, target)
    for name, path in done.kernels:
        if as_json:
            print(json.dumps({"event": "kernel_installed", "name": name, "directory": str(path)}))
        else:
            console().print(f"[green]kernel[/] [bold]{name}[/] -> {path}")


@dataclass(frozen=True)
class BuildRun:
    """How ``build`` runs: lock first or not, where, how wide, from which interpreters."""

    lock_if_needed: bool
    build_dir: Path
    jobs: int = 2
    runtime_source: str = "auto"
    python: list[str] | None = None
    build: bool = True


def run_build(
    stack: StackSpec,
    include: list[str] | None,
    run: BuildRun,
    reporter: Reporter,
    as_json: bool,
) -> bool:
    """Lock if asked, then build; prints summaries; returns False when something failed."""
    from kernelstacks.build.engine import BuildOptions, build_stack
    from kernelstacks.lock.engine import LockOptions, lock_stack

    if run.runtime_source not in ("auto", "managed", "local"):
        raise KernelstacksError(
            f"--runtime-source {run.runtime_source!r}: expected auto, managed or local"
        )
    overrides = parse_python_overrides(run.python)
    if run.lock_if_needed:
        lock_options = LockOptions(run.runtime_source, overrides, run.build_dir)
        summary = lock_stack(
            stack, include, if_needed=True, jobs=run.jobs, reporter=reporter, options=lock_options
        )
        if not summary.ok:
            reporter.close()
            if not as_json:
                print_summary("lock", summary.states, summary.errors)
            return False
    if not run.build:
        return True
    options = BuildOptions(
        build_dir=run.build_dir,
        jobs=run.jobs,
        runtime_source=run.runtime_source,
        python_overrides=overrides,
    )
    result = build_stack(stack, include, options, reporter)
    reporter.close()
    if not as_json:
        print_summary("build", result.states, result.errors)
        if VERBOSITY[0] >= 0:
            console().print(f"layers are in [bold]{options.build_dir}[/]")
    return result.ok


def run(
    ctx: typer.Context,
    spec: SpecArg,
    app_name: Annotated[str, typer.Argument(metavar="APP", help="Application layer name.")],
    build_dir: BuildDirOpt = None,
) -> None:
    """Run an application layer's launch module with the remaining arguments."""
    code = run_app(spec, app_name, build_dir, list(ctx.args))
    raise typer.Exit(code)


def run_app(spec_path: Path, app_name: str, build_dir: Path | None, args: list[str]) -> int:
    """Run ``python -m <launch module>`` in the built app layer; returns its exit status."""
    stack = load_stack(spec_path, False)
    try:
        app = stack.find_app(app_name)
        layer_path = resolve_dir(stack, build_dir, DEFAULT_BUILD_DIR) / app.build_name
        python = layer_path / "bin" / "python"
        if not python.exists():
            raise KernelstacksError(
                f"{app.build_name} is not built (no {python}); run 'kernelstacks build {spec_path}'"
            )
    except KernelstacksError as exc:
        report_error(exc)
        return 1
    env = dict(os.environ)
    env.pop("PYTHONHOME", None)
    env.pop("PYTHONPATH", None)
    return subprocess.call([os.fspath(python), "-m", str(app.launch_module_name), *args], env=env)

"""``kernelstacks lock``, ``build`` and ``run``: the engine's commands."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Annotated

import typer

from kernelstacks._support.errors import KernelstacksError
from kernelstacks._support.progress import Reporter
from kernelstacks.cli.options import (
    BuildDirOpt,
    IncludeOpt,
    JobsOpt,
    JsonOpt,
    PythonOpt,
    RuntimeSourceOpt,
    SpecArg,
)
from kernelstacks.cli.output import console, load_stack, print_summary, report_error, reporting
from kernelstacks.spec.model import StackSpec


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


def lock(
    spec: SpecArg,
    include: IncludeOpt = None,
    if_needed: Annotated[
        bool, typer.Option("--if-needed", help="Relock only layers whose inputs changed.")
    ] = False,
    build_dir: BuildDirOpt = None,
    jobs: JobsOpt = 2,
    runtime_source: RuntimeSourceOpt = "auto",
    python: PythonOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Lock layers (lower layers first) into requirements/<build-name>/pylock.*.toml."""
    from kernelstacks.lock.engine import LockOptions, lock_stack

    stack = load_stack(spec, json_output)
    with reporting(json_output) as reporter:
        options = LockOptions(
            runtime_source, parse_python_overrides(python), build_dir and Path(build_dir).absolute()
        )
        summary = lock_stack(
            stack, include, if_needed=if_needed, jobs=jobs, reporter=reporter, options=options
        )
    if not json_output:
        print_summary("lock", summary.states, summary.errors)
    if not summary.ok:
        raise typer.Exit(1)


def build(
    spec: SpecArg,
    include: IncludeOpt = None,
    lock_if_needed: Annotated[
        bool, typer.Option("--lock-if-needed", help="Lock layers whose locks are missing/stale.")
    ] = False,
    build_dir: BuildDirOpt = None,
    jobs: JobsOpt = 2,
    runtime_source: RuntimeSourceOpt = "auto",
    python: PythonOpt = None,
    kernels: Annotated[
        bool, typer.Option("--kernels", help="Then register kernel-enabled apps as kernels.")
    ] = False,
    kernels_prefix: Annotated[
        Path | None,
        typer.Option("--kernels-prefix", help="With --kernels: write to DIR/share/jupyter."),
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Build layers into the build dir: runtimes, then framework and application venvs."""
    stack = load_stack(spec, json_output)
    with reporting(json_output) as reporter:
        ok = run_build(
            stack,
            include,
            lock_if_needed,
            build_dir,
            jobs,
            runtime_source,
            python,
            reporter,
            json_output,
        )
        if ok and (kernels or kernels_prefix):
            register_built_kernels(stack, include, build_dir, kernels_prefix, json_output)
    if not ok:
        raise typer.Exit(1)


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


def run_build(
    stack: StackSpec,
    include: list[str] | None,
    lock_if_needed: bool,
    build_dir: Path | None,
    jobs: int,
    runtime_source: str,
    python: list[str] | None,
    reporter: Reporter,
    as_json: bool,
) -> bool:
    """Lock if asked, then build; prints summaries; returns False when something failed."""
    from kernelstacks.build.engine import BuildOptions, build_stack
    from kernelstacks.build.state import default_build_dir
    from kernelstacks.lock.engine import LockOptions, lock_stack

    if runtime_source not in ("auto", "managed", "local"):
        raise KernelstacksError(
            f"--runtime-source {runtime_source!r}: expected auto, managed or local"
        )
    overrides = parse_python_overrides(python)
    target = Path(build_dir).absolute() if build_dir else default_build_dir(stack)
    if lock_if_needed:
        lock_options = LockOptions(runtime_source, overrides, target)
        summary = lock_stack(
            stack, include, if_needed=True, jobs=jobs, reporter=reporter, options=lock_options
        )
        if not summary.ok:
            reporter.close()
            if not as_json:
                print_summary("lock", summary.states, summary.errors)
            return False
    options = BuildOptions(
        build_dir=target,
        jobs=jobs,
        runtime_source=runtime_source,
        python_overrides=overrides,
    )
    result = build_stack(stack, include, options, reporter)
    reporter.close()
    if not as_json:
        print_summary("build", result.states, result.errors)
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
    from kernelstacks.build.state import default_build_dir

    stack = load_stack(spec_path, False)
    try:
        app = stack.find_app(app_name)
        layer_path = (Path(build_dir) if build_dir else default_build_dir(stack)) / app.build_name
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

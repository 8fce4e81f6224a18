"""CLI commands of the engine: lock, build, run and demo."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from kernelstacks._support.errors import KernelstacksError, SpecError
from kernelstacks.cli.app import IncludeOpt, JsonOpt, SpecArg, _console, report_error

BuildDirOpt = Annotated[
    Path | None,
    typer.Option("--build-dir", help="Where layers are built (default: _build beside the spec)."),
]
JobsOpt = Annotated[
    int, typer.Option("--jobs", "-j", min=1, help="Layers to lock/build at the same time.")
]
RuntimeSourceOpt = Annotated[
    str,
    typer.Option(
        "--runtime-source",
        envvar="KERNELSTACKS_RUNTIME_SOURCE",
        help="Where runtimes come from: auto (managed when uv may download, else local), "
        "managed (uv's python-build-standalone) or local (an interpreter on this machine).",
    ),
]
PythonOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--python",
        help="Use this interpreter for a runtime: IMPLEMENTATION=PATH, e.g. "
        "cpython@3.12=/usr/bin/python3.12. Repeatable.",
    ),
]


def register(app: typer.Typer) -> None:
    """Add the engine's commands to the root app."""
    app.command()(lock)
    app.command()(build)
    app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(run)
    app.command()(demo)
    app.command("add")(add_requirement)
    app.command("remove")(remove_requirement)


def _reporter(as_json: bool):
    """JSON lines for programs, a live display in a terminal, plain lines in logs."""
    from kernelstacks._support.progress import JsonReporter, PlainReporter, RichReporter

    if as_json:
        return JsonReporter()
    return RichReporter() if sys.stderr.isatty() else PlainReporter()


@contextlib.contextmanager
def reporting(as_json: bool) -> Iterator[Any]:
    """A reporter for one command; user errors become a message and exit status 1."""
    reporter = _reporter(as_json)
    try:
        yield reporter
    except KernelstacksError as exc:
        reporter.close()
        report_error(exc, as_json)
        raise typer.Exit(1) from None
    finally:
        reporter.close()


def _load(spec_path: Path, as_json: bool):
    from kernelstacks.spec import load_spec

    try:
        return load_spec(spec_path)
    except KernelstacksError as exc:
        report_error(exc, as_json)
        raise typer.Exit(2 if isinstance(exc, SpecError) else 1) from None


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

    stack = _load(spec, json_output)
    with reporting(json_output) as reporter:
        options = LockOptions(
            runtime_source, parse_python_overrides(python), build_dir and Path(build_dir).absolute()
        )
        summary = lock_stack(
            stack, include, if_needed=if_needed, jobs=jobs, reporter=reporter, options=options
        )
    if not json_output:
        _print_summary("lock", summary.states, summary.errors)
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
    stack = _load(spec, json_output)
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
            _build_kernels(stack, include, build_dir, kernels_prefix, json_output)
    if not ok:
        raise typer.Exit(1)


def _build_kernels(stack, include, build_dir, prefix, as_json) -> None:
    """``build --kernels``: register the kernels after a successful build."""
    from kernelstacks.cli.kernels import install_kernels

    scope = "prefix" if prefix else "user"
    done = install_kernels(stack, include, build_dir, scope, prefix)
    for name, path in done:
        if as_json:
            print(json.dumps({"event": "kernel_installed", "name": name, "directory": str(path)}))
        else:
            _console().print(f"[green]kernel[/] [bold]{name}[/] -> {path}")


def run_build(
    stack, include, lock_if_needed, build_dir, jobs, runtime_source, python, reporter, as_json
) -> bool:
    """Lock if asked, then build; prints summaries; returns False when something failed."""
    from kernelstacks.build.engine import BuildOptions, build_stack, default_build_dir
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
                _print_summary("lock", summary.states, summary.errors)
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
        _print_summary("build", result.states, result.errors)
        _console().print(f"layers are in [bold]{options.build_dir}[/]")
    return result.ok


def _print_summary(action: str, states: dict[str, str], errors: dict[str, str]) -> None:
    from rich.markup import escape

    console = _console()
    counts: dict[str, int] = {}
    for state in states.values():
        counts[state] = counts.get(state, 0) + 1
    text = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    colour = "red" if errors else "green"
    console.print(f"[{colour}]{action}:[/] {text or 'nothing to do'}")
    for layer, message in errors.items():
        _console(stderr=True).print(f"[red]  {escape(layer)}:[/] {escape(message)}")


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
    from kernelstacks.build.engine import default_build_dir

    stack = _load(spec_path, False)
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


def demo(
    directory: Annotated[
        Path | None,
        typer.Option("--dir", help="Where to write the demo stack (default: per-user data dir)."),
    ] = None,
    runtime_source: RuntimeSourceOpt = "auto",
    jobs: JobsOpt = 2,
    kernels: Annotated[
        bool, typer.Option("--kernels", help="Also register the demo apps as Jupyter kernels.")
    ] = False,
) -> None:
    """Write the embedded demo stack, lock it, build it and run both of its apps."""
    from kernelstacks.cli.demo import write_demo
    from kernelstacks.cli.show import render_tree
    from kernelstacks.spec import load_spec

    console = _console()
    try:
        spec_path = write_demo(directory)
        stack = load_spec(spec_path)
    except KernelstacksError as exc:
        report_error(exc)
        raise typer.Exit(1) from None
    console.print(f"Demo stack written to [bold]{spec_path}[/]")
    console.print(render_tree(stack, list(stack.layers.values())))
    reporter = _reporter(False)
    try:
        ok = run_build(stack, None, True, None, jobs, runtime_source, None, reporter, False)
    except KernelstacksError as exc:
        reporter.close()
        report_error(exc)
        raise typer.Exit(1) from None
    if not ok:
        raise typer.Exit(1)
    for app in stack.applications:
        console.rule(f"[bold]kernelstacks run {spec_path} {app.name}")
        sys.stdout.flush()
        code = run_app(spec_path, app.name, None, [])
        if code != 0:
            report_error(KernelstacksError(f"app {app.name} exited with status {code}"))
            raise typer.Exit(code)
    console.rule()
    if kernels:
        try:
            _build_kernels(stack, None, None, None, False)
        except KernelstacksError as exc:
            report_error(exc)
            raise typer.Exit(1) from None
    console.print(
        f"Built the demo stack in [bold]{stack.root / '_build'}[/]. Try:\n"
        f"  kernelstacks show {spec_path}\n"
        f"  kernelstacks run {spec_path} analysis\n"
        + (
            ""
            if kernels
            else f"  kernelstacks kernels install {spec_path}   # both apps as Jupyter kernels\n"
        )
    )


LayerOpt = Annotated[
    str | None,
    typer.Option(
        "--layer",
        "-l",
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

    stack = _load(spec, as_json)
    try:
        name = layer or os.environ.get("KERNELSTACKS_LAYER") or _only_app(stack)
        target, changes = edit_requirements(spec, name, add=add, remove=remove)
        if as_json:
            print(json.dumps({"event": "edited", "layer": target.build_name, "changes": changes}))
        else:
            for change in changes or ["no change"]:
                _console().print(f"{target.build_name}: {change}")
        if no_lock or not changes:
            return
        stack = _load(spec, as_json)
        reporter = _reporter(as_json)
        summary = lock_stack(
            stack, [target.build_name], if_needed=True, reporter=reporter, options=LockOptions()
        )
        reporter.close()
        if not as_json:
            _print_summary("lock", summary.states, summary.errors)
        if not summary.ok:
            raise typer.Exit(1)
    except KernelstacksError as exc:
        report_error(exc, as_json)
        raise typer.Exit(1) from None


def _only_app(stack) -> str:
    apps = stack.applications
    if len(apps) == 1:
        return apps[0].build_name
    raise KernelstacksError(
        f"{stack.path}: say which layer to edit with --layer (layers: {', '.join(stack.layers)})"
    )


def add_requirement(
    spec: SpecArg,
    requirements: Annotated[list[str], typer.Argument(help="PEP 508 requirements to add.")],
    layer: LayerOpt = None,
    no_lock: NoLockOpt = False,
    json_output: JsonOpt = False,
) -> None:
    """Add requirements to a layer (comments kept), then relock it and the layers above it."""
    _edit(spec, layer, requirements, [], no_lock, json_output)


def remove_requirement(
    spec: SpecArg,
    requirements: Annotated[list[str], typer.Argument(help="Requirement names to remove.")],
    layer: LayerOpt = None,
    no_lock: NoLockOpt = False,
    json_output: JsonOpt = False,
) -> None:
    """Remove requirements from a layer, then relock it and the layers above it."""
    _edit(spec, layer, [], requirements, no_lock, json_output)

"""``kernelstacks demo``: the embedded demo stack, written out, built and run.

The demo's runtime uses the Python version running kernelstacks, so the demo works offline on a
machine that has only that Python (the local runtime source) as well as online.
"""

from __future__ import annotations

import shutil
import sys
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer

from kernelstacks._support.errors import KernelstacksError
from kernelstacks.cli.options import JobsOpt, RuntimeSourceOpt
from kernelstacks.cli.output import console, make_reporter, report_error
from kernelstacks.cli.stack import BuildRun, register_built_kernels, run_app, run_build


def default_demo_dir() -> Path:
    """Per-user data directory for the demo."""
    from platformdirs import user_data_path

    return user_data_path("kernelstacks") / "demo"


def demo_spec_text() -> str:
    """The demo venvstacks.toml, with the runtime set to this interpreter's X.Y."""
    text = resources.files("kernelstacks.demo").joinpath("venvstacks.toml").read_text("utf-8")
    ver = f"{sys.version_info.major}.{sys.version_info.minor}"
    return text.replace("cpython-3.11", f"cpython-{ver}").replace("cpython@3.11", f"cpython@{ver}")


def write_demo(directory: Path | None) -> Path:
    """Copy the demo stack into ``directory``; keeps existing locks so reruns are fast."""
    target = Path(directory) if directory else default_demo_dir()
    try:
        target.mkdir(parents=True, exist_ok=True)
        source = resources.files("kernelstacks.demo")
        modules = target / "launch_modules"
        modules.mkdir(exist_ok=True)
        for item in source.joinpath("launch_modules").iterdir():
            if item.name.endswith(".py"):
                with resources.as_file(item) as src:
                    shutil.copyfile(src, modules / item.name)
        spec_path = target / "venvstacks.toml"
        spec_path.write_text(demo_spec_text(), encoding="utf-8")
    except OSError as exc:
        raise KernelstacksError(f"cannot write the demo stack to {target}: {exc}") from exc
    return spec_path


def register(app: typer.Typer) -> None:
    """Add ``demo`` to the root app."""
    app.command("demo")(demo_command)


def demo_command(
    directory: Annotated[
        Path | None,
        typer.Option(
            "--dir",
            metavar="DIR",
            help="Where to write the demo stack (default: per-user data dir).",
        ),
    ] = None,
    runtime_source: RuntimeSourceOpt = "auto",
    jobs: JobsOpt = 2,
    kernels: Annotated[
        bool, typer.Option("--kernels", help="Also register the demo apps as Jupyter kernels.")
    ] = False,
) -> None:
    """Write the embedded demo stack, lock it, build it and run both of its apps."""
    from kernelstacks.cli.show import render_tree
    from kernelstacks.spec import load_spec

    out = console()
    try:
        spec_path = write_demo(directory)
        stack = load_spec(spec_path)
    except KernelstacksError as exc:
        report_error(exc)
        raise typer.Exit(1) from None
    out.print(f"Demo stack written to [bold]{spec_path}[/]")
    out.print(render_tree(stack, list(stack.layers.values())))
    reporter = make_reporter(False)
    try:
        run = BuildRun(True, stack.root / "_build", jobs, runtime_source)
        ok = run_build(stack, None, run, reporter, False)
    except KernelstacksError as exc:
        reporter.close()
        report_error(exc)
        raise typer.Exit(1) from None
    if not ok:
        raise typer.Exit(1)
    for app in stack.applications:
        out.rule(f"[bold]kernelstacks run {spec_path} {app.name}")
        sys.stdout.flush()
        code = run_app(spec_path, app.name, None, [])
        if code != 0:
            report_error(KernelstacksError(f"app {app.name} exited with status {code}"))
            raise typer.Exit(code)
    out.rule()
    if kernels:
        try:
            register_built_kernels(stack, None, None, None, False)
        except KernelstacksError as exc:
            report_error(exc)
            raise typer.Exit(1) from None
    out.print(
        f"Built the demo stack in [bold]{stack.root / '_build'}[/]. Try:\n"
        f"  kernelstacks show {spec_path}\n"
        f"  kernelstacks run {spec_path} analysis\n"
        + (
            ""
            if kernels
            else f"  kernelstacks kernels install {spec_path}   # both apps as Jupyter kernels\n"
        )
    )

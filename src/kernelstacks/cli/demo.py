"""``kernelstacks demo``: the embedded demo stack, written out, built, run and made kernels.

The demo's runtime uses the Python version running kernelstacks, so the demo works offline on a
machine that has only that Python (the local runtime source) as well as online.

The demo directory belongs to the user once written: a spec or launch module edited there (by
hand or with ``kernelstacks add``) is kept and built as it is; only ``--reset`` puts the embedded
files back, after keeping a timestamped backup of each edited one.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from kernelstacks._support import atomic
from kernelstacks._support.errors import KernelstacksError
from kernelstacks._support.hashing import sha256_text
from kernelstacks.cli.options import JobsOpt, PrefixOpt, RuntimeSourceOpt, SysPrefixOpt, UserOpt
from kernelstacks.cli.output import console, make_reporter, report_error, scope_of
from kernelstacks.cli.stack import BuildRun, run_app, run_build

if TYPE_CHECKING:
    from kernelstacks.spec.model import StackSpec


def default_demo_dir() -> Path:
    """Per-user data directory for the demo."""
    from platformdirs import user_data_path

    return user_data_path("kernelstacks") / "demo"


def demo_spec_text() -> str:
    """The demo venvstacks.toml, with the runtime set to this interpreter's X.Y."""
    text = resources.files("kernelstacks.demo").joinpath("venvstacks.toml").read_text("utf-8")
    ver = f"{sys.version_info.major}.{sys.version_info.minor}"
    return text.replace("cpython-3.11", f"cpython-{ver}").replace("cpython@3.11", f"cpython@{ver}")


def demo_files() -> dict[str, str]:
    """Every file of the embedded demo, relative path -> text."""
    files = {"venvstacks.toml": demo_spec_text()}
    modules = resources.files("kernelstacks.demo").joinpath("launch_modules")
    for item in modules.iterdir():
        if item.name.endswith(".py"):
            files[f"launch_modules/{item.name}"] = item.read_text("utf-8")
    return files


# Hashes of the files the demo last wrote: a file that still matches was not edited by the user
# and may be replaced by a newer kernelstacks' demo (or another Python's runtime version).
RECORD = ".kernelstacks-demo.json"


@dataclass
class DemoFiles:
    """What :func:`write_demo` did: the spec's path, files it kept, updated or backed up."""

    spec_path: Path
    kept: list[Path] = field(default_factory=list)
    updated: list[Path] = field(default_factory=list)
    backups: list[Path] = field(default_factory=list)


def backup_path(path: Path) -> Path:
    """``venvstacks.toml.2026-12-02T13-05-57.bak`` beside ``path`` (never an existing file)."""
    stamp = time.strftime("%Y-%m-%dT%H-%M-%S")
    candidate = path.with_name(f"{path.name}.{stamp}.bak")
    n = 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}.{stamp}-{n}.bak")
    return candidate


def write_demo(directory: Path | None, reset: bool = False) -> DemoFiles:
    """Write the embedded demo into ``directory``, keeping whatever the user changed there.

    A missing file is written. A file that differs from the embedded copy is the user's edit and
    is kept, unless ``reset``, which copies it to a timestamped backup first; a file that is still
    exactly what the demo wrote last time (see :data:`RECORD`) was not edited and is updated.
    Locks and builds already in the directory stay, so reruns are fast.
    """
    target = Path(directory) if directory else default_demo_dir()
    done = DemoFiles(target / "venvstacks.toml")
    try:
        record = atomic.read_json(target / RECORD) or {}
        written: dict[str, str] = dict(record.get("written", {}))
        for relative, text in demo_files().items():
            path = target / relative
            if path.exists():
                current = path.read_text(encoding="utf-8")
                if current == text:
                    written[relative] = sha256_text(text)
                    continue
                if written.get(relative) == sha256_text(current):
                    done.updated.append(path)
                elif not reset:
                    done.kept.append(path)
                    continue
                else:
                    backup = backup_path(path)
                    atomic.write_text(backup, current)
                    done.backups.append(backup)
            atomic.write_text(path, text)
            written[relative] = sha256_text(text)
        atomic.write_json(target / RECORD, {"written": written})
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise KernelstacksError(f"cannot write the demo stack to {target}: {exc}") from exc
    return done


def register(app: typer.Typer) -> None:
    """Add ``demo`` to the root app."""
    app.command("demo")(demo_command)


def demo_command(
    directory: Annotated[
        Path | None,
        typer.Option(
            "--dir",
            metavar="DIR",
            help="Where to write the demo stack (default: a per-user data directory).",
        ),
    ] = None,
    reset: Annotated[
        bool,
        typer.Option(
            "--reset",
            help="Put the embedded demo files back over edited ones (each edited file is kept "
            "as FILE.<time>.bak first).",
        ),
    ] = False,
    runtime_source: RuntimeSourceOpt = "auto",
    jobs: JobsOpt = 2,
    kernels: Annotated[
        bool,
        typer.Option(
            "--kernels/--no-kernels",
            help="Register the demo apps as Jupyter kernels (default: yes, per user).",
        ),
    ] = True,
    user: UserOpt = False,
    sys_prefix: SysPrefixOpt = False,
    prefix: PrefixOpt = None,
) -> None:
    """Write the embedded demo stack, lock it, build it, run both apps, register its kernels."""
    from kernelstacks.spec import load_spec

    out = console()
    try:
        scope = scope_of(user, sys_prefix, prefix)
        files = write_demo(directory, reset)
        stack = load_spec(files.spec_path)
    except KernelstacksError as exc:
        report_error(exc)
        raise typer.Exit(1) from None
    say_what_was_written(files)
    from kernelstacks.cli.show import render_tree

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
        out.rule(f"[bold]kernelstacks run {files.spec_path} {app.name}")
        sys.stdout.flush()
        code = run_app(files.spec_path, app.name, None, [])
        if code != 0:
            report_error(KernelstacksError(f"app {app.name} exited with status {code}"))
            raise typer.Exit(code)
    out.rule()
    installed: list[tuple[str, Path]] = []
    if kernels:
        installed = register_demo_kernels(stack, scope)
    say_what_next(stack.root / "_build", files.spec_path, installed, scope)


def say_what_was_written(files: DemoFiles) -> None:
    """Tell where the demo is and which of the user's edits were kept or backed up."""
    out = console()
    out.print(f"Demo stack: [bold]{files.spec_path}[/]")
    for path in files.kept:
        out.print(
            f"[yellow]kept[/] your edited {path} (building it as it is; "
            "[bold]kernelstacks demo --reset[/] restores the demo's own, keeping a backup)"
        )
    for path in files.updated:
        out.print(f"[green]updated[/] {path} to this version's demo (you had not edited it)")
    for backup in files.backups:
        original = backup.name.rsplit(".", 2)[0]
        out.print(f"[yellow]reset[/] {original}: your edited copy is saved as {backup}")


def register_demo_kernels(
    stack: StackSpec, scope: tuple[str, Path | None]
) -> list[tuple[str, Path]]:
    """Register the demo's kernels in the scope asked for; exit 1 with the error if that fails."""
    from kernelstacks.jupyter.install import Target, install_kernels

    try:
        done = install_kernels(stack, None, None, Target(*scope))
    except KernelstacksError as exc:
        report_error(exc)
        raise typer.Exit(1) from None
    return done.kernels


def display_name(kernel_dir: Path) -> str:
    """The name JupyterLab shows for a kernel we wrote (its kernel.json's display_name)."""
    try:
        spec = json.loads((kernel_dir / "kernel.json").read_text(encoding="utf-8"))
        return str(spec.get("display_name", kernel_dir.name))
    except (OSError, ValueError):
        return kernel_dir.name


def lab_command(scope: tuple[str, Path | None]) -> str:
    """The command that opens JupyterLab with the demo's kernels in view."""
    kind, prefix = scope
    if kind == "prefix" and prefix is not None:
        return f"JUPYTER_PATH={Path(prefix).absolute() / 'share' / 'jupyter'} jupyter lab"
    return "jupyter lab"


def say_what_next(
    build: Path, spec_path: Path, kernels: list[tuple[str, Path]], scope: tuple[str, Path | None]
) -> None:
    """End with what was made and the exact commands to use it."""
    out = console()
    out.print(f"Built the demo stack in [bold]{build}[/].")
    if kernels:
        out.print("Jupyter kernels (display name, kernel name):")
        for name, path in kernels:
            out.print(f"  [bold]{display_name(path)}[/]  ({name}, in {path.parent})")
        out.print("Open them in JupyterLab (the launcher shows each display name):")
        if importlib.util.find_spec("jupyterlab") is None and shutil.which("jupyter-lab") is None:
            out.print(
                "  python -m pip install jupyterlab ipywidgets   # JupyterLab is not installed here"
            )
        out.print(f"  {lab_command(scope)}")
    else:
        out.print(f"Register its kernels with:\n  kernelstacks kernels install {spec_path}")
    out.print(
        f"Also try:\n  kernelstacks show {spec_path}\n  kernelstacks run {spec_path} analysis\n"
        f"  kernelstacks add {spec_path} humanize --layer analysis   # then rerun the demo"
    )

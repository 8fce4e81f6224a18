"""The changing subcommands: ``lock``, ``build``, ``add``, ``remove``, ``restart``, and the rest.

``lock``, ``build``, ``add`` and ``remove`` run the kernelstacks installation that registered this
kernel (``KERNELSTACKS_TOOL``) with ``--progress-json`` (``--json`` for add/remove) and
follow its progress in the cell; they block the
cell, so a notebook run top to bottom sees their result in the next cell, and a failure or an
interrupt fails the cell so the run stops.
"""

from __future__ import annotations

import argparse
import os

from kernelstacks_kernel import contract, display, health
from kernelstacks_kernel.chain import spec_path
from kernelstacks_kernel.commands import SUBCOMMANDS, subcommand
from kernelstacks_kernel.display import VenvstacksError

lock_cmd = subcommand("lock", "Lock the stack (this kernel's layers by default).")
build_cmd = subcommand("build", "Build the stack (this kernel's layers by default).")
for _cmd in (lock_cmd, build_cmd):
    _cmd.parser.add_argument("--include", action="append", help="layer pattern (repeatable)")
    _cmd.parser.add_argument("--all", action="store_true", help="the whole stack")
    _cmd.parser.add_argument("--if-needed", action="store_true", help="(lock) only stale layers")
build_cmd.parser.add_argument("--kernels", action="store_true", help="re-register the kernels")


def _selection(args: argparse.Namespace) -> list[str]:
    if args.include:
        return [x for pattern in args.include for x in ("--include", pattern)]
    layer = os.environ.get(contract.ENV_LAYER)
    return [] if args.all or not layer else ["--include", layer]


def _spec_arg() -> str:
    spec = spec_path()
    if spec is None:
        raise VenvstacksError(
            f"{contract.ENV_SPEC} is not set: this kernel was not registered by "
            "kernelstacks, so it does not know its stack file"
        )
    return str(spec)


def kernels_option() -> list[str]:
    """Register the kernels again where this one was registered (its record says where)."""
    spec_dir = health.kernel_dir()
    record = health.kernel_record(spec_dir) if spec_dir else {}
    prefix = record.get("prefix")
    if record.get("scope") in ("prefix", "sys-prefix") and prefix:
        return ["--kernels-prefix", str(prefix)]
    return ["--kernels"]


@lock_cmd
def lock(args: argparse.Namespace) -> None:
    """Run ``kernelstacks lock`` with live progress."""
    extra = ["--if-needed"] if args.if_needed else []
    _run_tool(["lock", _spec_arg(), "--progress-json", *extra, *_selection(args)], "lock")


@build_cmd
def build(args: argparse.Namespace) -> None:
    """Run ``kernelstacks build --lock-if-needed`` with live progress."""
    argv = ["build", _spec_arg(), "--progress-json", "--lock-if-needed", *_selection(args)]
    build_dir = os.environ.get(contract.ENV_BUILD_DIR)
    if build_dir:
        argv += ["--build-dir", build_dir]
    if args.kernels:
        argv += kernels_option()
    _run_tool(argv, "build")


def _run_tool(argv: list[str], action: str) -> None:
    """Run the tool, showing a progress bar and log lines; fail the cell when it fails."""
    from kernelstacks_kernel.progress_view import ProgressView
    from kernelstacks_kernel.toolrun import ToolRun

    view = ProgressView(action)
    run = ToolRun(argv, on_event=view.event, on_line=view.line)
    try:
        run.start()
        run.follow()
    except KeyboardInterrupt:
        run.interrupt()
        if run.proc is not None:
            run.proc.wait()
        view.finish(None, interrupted=True)
        raise VenvstacksError(f"{action} interrupted: every working layer was kept") from None
    except OSError as exc:
        view.finish(None)
        raise VenvstacksError(f"{action}: cannot run kernelstacks: {exc}") from None
    failure = view.finish(run)
    if failure:
        raise VenvstacksError(failure)


add_cmd = subcommand("add", "Add requirements to a layer's spec, then relock it.")
remove_cmd = subcommand("remove", "Remove requirements from a layer's spec, then relock it.")
for _cmd in (add_cmd, remove_cmd):
    _cmd.parser.add_argument("requirements", nargs="+")
    _cmd.parser.add_argument("--layer", help="layer to edit (default: this kernel's app layer)")


@add_cmd
def add(args: argparse.Namespace) -> None:
    """``kernelstacks add`` (tomlkit, comments kept) + relock, streamed."""
    layer = args.layer or os.environ.get(contract.ENV_LAYER)
    argv = ["add", _spec_arg(), *args.requirements, "--json"]
    _run_tool([*argv, "--layer", layer] if layer else argv, "add")
    print("Run %venvstacks build to install the change.")


@remove_cmd
def remove(args: argparse.Namespace) -> None:
    """``kernelstacks remove`` + relock, streamed."""
    layer = args.layer or os.environ.get(contract.ENV_LAYER)
    argv = ["remove", _spec_arg(), *args.requirements, "--json"]
    _run_tool([*argv, "--layer", layer] if layer else argv, "remove")
    print("Run %venvstacks build to apply the change.")


restart_cmd = subcommand("restart", "Restart this kernel so it uses rebuilt layers.")


@restart_cmd
def restart(args: argparse.Namespace) -> None:
    """Replace the kernel process in place (see :mod:`kernelstacks_kernel.relaunch`)."""
    from IPython import get_ipython

    from kernelstacks_kernel import relaunch

    shell = get_ipython()
    try:
        message = relaunch.restart(getattr(shell, "kernel", None))
    except RuntimeError as exc:
        raise VenvstacksError(str(exc)) from None
    raise display.KernelRestarting(message)


explore_cmd = subcommand("explore", "The layer explorer widget.")


@explore_cmd
def explore(args: argparse.Namespace) -> None:
    """Show the explorer (tree, package tables, Lock/Build buttons)."""
    from IPython.display import display as show_widget

    from kernelstacks_kernel.explorer import Explorer

    show_widget(Explorer().widget)


help_cmd = subcommand("help", "List the subcommands.")


@help_cmd
def help_(args: argparse.Namespace) -> None:
    """One line per subcommand."""
    rows = [[name, parser.description or ""] for name, (_, parser) in sorted(SUBCOMMANDS.items())]
    display.publish(display.table_bundle("%venvstacks subcommands", ["subcommand", "what"], rows))

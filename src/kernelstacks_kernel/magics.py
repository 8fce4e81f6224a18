"""The ``%venvstacks`` line magic and its subcommands.

Everything here must work with the standard library, IPython and ipywidgets only. Reading
commands (show, packages, why, diff) inspect the layers directly; changing commands (lock, build,
add, remove) run the kernelstacks tool that registered this kernel as a subprocess and stream its
progress into the cell.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kernelstacks_kernel import contract, display
from kernelstacks_kernel.chain import LayerInfo, current_chain, spec_path

Handler = Callable[[argparse.Namespace], None]
SUBCOMMANDS: dict[str, tuple[Handler, argparse.ArgumentParser]] = {}


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so errors become one readable line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ValueError(f"{self.prog}: {message}")


class Subcommand:
    """A ``%venvstacks <name>`` subcommand: its parser now, its handler when it decorates one."""

    def __init__(self, name: str, help_text: str) -> None:
        self.name = name
        self.parser = _Parser(prog=f"%venvstacks {name}", description=help_text, add_help=False)

    def __call__(self, func: Handler) -> Handler:
        """Register ``func`` as the handler (used as a decorator)."""
        SUBCOMMANDS[self.name] = (func, self.parser)
        return func


def subcommand(name: str, help_text: str) -> Subcommand:
    """Register a ``%venvstacks <name>`` handler with its own argument parser."""
    return Subcommand(name, help_text)


def _require_chain() -> list[LayerInfo]:
    chain = current_chain()
    if not chain:
        raise RuntimeError(
            f"this kernel ({sys.prefix}) is not a kernelstacks layer: no layer metadata found"
        )
    return chain


# -- show ------------------------------------------------------------------------------------------

show_cmd = subcommand("show", "The chain of layers this kernel runs on.")


@show_cmd
def show(args: argparse.Namespace) -> None:
    """The chain of layers this kernel runs on: app, frameworks, runtime."""
    chain = _require_chain()
    rows = [
        [
            layer.name,
            layer.kind,
            layer.lock_version if layer.lock_version is not None else "",
            layer.py_version,
            layer.path if layer.present else f"MISSING: {layer.path}",
        ]
        for layer in chain
    ]
    title = f"kernelstacks chain of {chain[0].name} (Python {chain[0].py_version})"
    data = {"layers": [layer.as_dict() for layer in chain]}
    display.publish(
        display.table_bundle(title, ["layer", "kind", "lock", "python", "path"], rows, data, 0)
    )


# -- packages ------------------------------------------------------------------------------------

packages_cmd = subcommand("packages", "Every distribution this kernel can import, per layer.")
packages_cmd.parser.add_argument("--layer", help="only this layer (name or build name)")
packages_cmd.parser.add_argument("--json", action="store_true", help="JSON only")


@packages_cmd
def packages(args: argparse.Namespace) -> None:
    """Distributions with version, providing layer, size; shadowed copies flagged."""
    from kernelstacks_kernel.inventory import inventory

    chain = _require_chain()
    dists = inventory(chain)
    if args.layer:
        names = {layer.name: layer for layer in chain}
        names.update({layer.build_name: layer for layer in chain})
        if args.layer not in names:
            raise ValueError(f"no layer '{args.layer}' in this kernel's chain ({', '.join(names)})")
        dists = [d for d in dists if d.layer == names[args.layer].name]
    data = {"packages": [d.as_dict() for d in dists]}
    if args.json:
        display.publish({"application/json": data, "text/plain": repr(data)})
        return
    rows = []
    for d in dists:
        note = ""
        if d.shadowed_by:
            note = f"SHADOWED by {d.shadowed_by}"
        elif d.shadows:
            note = f"shadows {', '.join(d.shadows)}"
        rows.append([d.display_name, d.version, d.layer, display.human_size(d.size), note])
    title = f"{len(dists)} distributions in {args.layer or 'this kernel'}"
    display.publish(
        display.table_bundle(title, ["package", "version", "layer", "size", "note"], rows, data)
    )


# -- why -------------------------------------------------------------------------------------------

why_cmd = subcommand("why", "Which layer provides a package and what pulled it in.")
why_cmd.parser.add_argument("package")


@why_cmd
def why(args: argparse.Namespace) -> None:
    """Providing layer, dependency path(s) from declared requirements, locked vs installed."""
    from kernelstacks_kernel.inventory import why as explain

    info = explain(args.package, _require_chain())
    if not info["found"]:
        raise ValueError(f"'{args.package}' is not installed in any layer of this kernel")
    lines = [
        f"{info['package']} {info['version']} is provided by layer {info['layer']}",
        f"locked version: {info['locked_version'] or 'unknown'}; installed: {info['version']}",
    ]
    for path in info["paths"] or [["(not reachable from any declared requirement)"]]:
        lines.append("required via: " + " -> ".join(path))
    for copy in info["shadowed_copies"]:
        lines.append(f"also in {copy['layer']} ({copy['version']}), hidden by {info['layer']}")
    rows = [[line] for line in lines]
    display.publish(display.table_bundle(f"why {info['package']}", ["answer"], rows, info))


# -- diff ------------------------------------------------------------------------------------------

diff_cmd = subcommand("diff", "Each layer's lock against what is installed.")


@diff_cmd
def diff(args: argparse.Namespace) -> None:
    """Drift between locks and installed packages (manual changes)."""
    from kernelstacks_kernel.inventory import diff as compare

    report = compare(_require_chain())
    rows = []
    for entry in report:
        if not entry["lock_found"]:
            rows.append([entry["layer"], "no lock file found", ""])
            continue
        changes = [f"missing {n}" for n in entry["missing"]]
        changes += [f"not in lock: {n}" for n in entry["extra"]]
        changes += [
            f"{c['name']}: locked {c['locked']}, installed {c['installed']}"
            for c in entry["changed"]
        ]
        rows.append(
            [entry["layer"], "matches its lock" if not changes else "DRIFT", "; ".join(changes)]
        )
    display.publish(
        display.table_bundle(
            "lock vs installed", ["layer", "state", "details"], rows, {"layers": report}
        )
    )


# -- lock / build ----------------------------------------------------------------------------------

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
        raise RuntimeError(
            f"{contract.ENV_SPEC} is not set: this kernel was not registered by "
            "kernelstacks, so it does not know its stack file"
        )
    return str(spec)


def _kernels_prefix() -> list[str]:
    """Re-register kernels where this one lives (its spec dir holds pylib/ on PYTHONPATH)."""
    pylib = os.environ.get("PYTHONPATH", "").split(os.pathsep)[0]
    if not pylib:
        return ["--kernels"]
    kernels_root = Path(pylib).parent.parent
    if kernels_root.name == "kernels" and kernels_root.parent.name == "jupyter":
        return ["--kernels-prefix", str(kernels_root.parents[2])]
    return ["--kernels"]


@lock_cmd
def lock(args: argparse.Namespace) -> None:
    """Run ``kernelstacks lock`` with live progress."""
    extra = ["--if-needed"] if args.if_needed else []
    _run_tool(["lock", _spec_arg(), "--json", *extra, *_selection(args)], "lock")


@build_cmd
def build(args: argparse.Namespace) -> None:
    """Run ``kernelstacks build --lock-if-needed`` with live progress."""
    argv = ["build", _spec_arg(), "--json", "--lock-if-needed", *_selection(args)]
    build_dir = os.environ.get(contract.ENV_BUILD_DIR)
    if build_dir:
        argv += ["--build-dir", build_dir]
    if args.kernels:
        argv += _kernels_prefix()
    _run_tool(argv, "build")


def _run_tool(argv: list[str], action: str) -> None:
    """Run the tool, showing a progress bar and log lines; then a summary and restart advice."""
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
        return
    view.finish(run)


# -- add / remove ----------------------------------------------------------------------------------

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


# -- restart / explore / help ----------------------------------------------------------------------

restart_cmd = subcommand("restart", "Restart this kernel so it uses rebuilt layers.")


@restart_cmd
def restart(args: argparse.Namespace) -> None:
    """Exit the kernel process right after this cell; Jupyter's restarter starts it again."""
    print(
        "Restarting this kernel to pick up the rebuilt layers... If it does not come back by "
        "itself, use Kernel > Restart Kernel."
    )
    sys.stdout.flush()
    threading.Timer(0.5, os._exit, args=(0,)).start()


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
    display.publish(
        display.table_bundle(
            "%venvstacks subcommands", ["subcommand", "what"], rows, {"subcommands": dict(rows)}
        )
    )


# -- entry points ----------------------------------------------------------------------------------


def venvstacks(line: str) -> None:
    """%venvstacks [show|packages|why|diff|lock|build|add|remove|restart|explore|help]."""
    try:
        argv = shlex.split(line)
    except ValueError as exc:
        display.error_line(f"cannot parse arguments: {exc}")
        return
    name, rest = (argv[0], argv[1:]) if argv else ("show", [])
    if name not in SUBCOMMANDS:
        known = ", ".join(sorted(SUBCOMMANDS))
        display.error_line(f"unknown subcommand '{name}' (known: {known})")
        return
    handler, parser = SUBCOMMANDS[name]
    try:
        handler(parser.parse_args(rest))
    except Exception as exc:
        message = (
            str(exc)
            if isinstance(exc, ValueError | RuntimeError)
            else (f"{type(exc).__name__}: {exc}")
        )
        display.error_line(f"{name} failed: {message}")


def pip_guard(line: str) -> None:
    """%pip in a layered kernel: the layers are locked, so say how to change them instead."""
    display.error_line(
        "this kernel runs on locked kernelstacks layers, so %pip does not change them. "
        f"Use %venvstacks add {line.partition(' ')[2] or 'PACKAGE'} (then %venvstacks build) "
        "to add a package to this kernel's layer."
    )


def register(ipython: Any) -> None:
    """Register the magics on an IPython shell."""
    ipython.register_magic_function(venvstacks, magic_kind="line", magic_name="venvstacks")
    if current_chain():
        ipython.register_magic_function(pip_guard, magic_kind="line", magic_name="pip")

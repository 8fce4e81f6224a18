"""``kernelstacks build``: runtimes and venv layers, built aside and swapped in atomically.

Each layer is built in a hidden staging directory beside its final place (``_build/.<name>~new-*``)
and swapped into ``_build/<build-name>`` only when complete (:mod:`kernelstacks._support.swap`),
so a kernel or a user never sees a half-built layer and an interrupted build, even a killed one,
never loses the working one.  A small state file inside each layer (:mod:`.state`) records the
hash of what it was built from: unchanged layers are skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kernelstacks._support.errors import KernelstacksError, describe_error
from kernelstacks._support.filelocks import exclusive, stack_lock
from kernelstacks._support.hashing import sha256_file, sha256_text, tree_hash
from kernelstacks._support.host import current_platform
from kernelstacks._support.paths import ensure_dir, inside
from kernelstacks._support.progress import Reporter
from kernelstacks._support.scheduler import run_in_order, summarize
from kernelstacks._support.swap import (
    clean_leftovers,
    discard,
    journal_for,
    new_staging_dir,
    recover,
    swap_in,
)
from kernelstacks.build.bytecode import compile_layer
from kernelstacks.build.chain import write_chain
from kernelstacks.build.install import install_lock
from kernelstacks.build.layer_metadata import write_layer_metadata
from kernelstacks.build.native_libs import link_native_libs
from kernelstacks.build.runtimes import build_runtime
from kernelstacks.build.scripts import fix_activate_scripts, fix_script_shebangs
from kernelstacks.build.state import (
    LAYER_METADATA,
    POSTINSTALL,
    STATE_FILE,
    default_build_dir,
    read_state,
    runtime_python,
    write_state,
)
from kernelstacks.build.venv import create_layer_venv, site_packages
from kernelstacks.interpreters.discovery import choose_interpreter
from kernelstacks.lock.indexes import install_index_env
from kernelstacks.lock.metadata import lock_path, lock_status
from kernelstacks.spec.fields import Kind
from kernelstacks.spec.model import LayerSpec, StackSpec

__all__ = [
    "BUILD_FORMAT",
    "CANCELLED",
    "LAYER_METADATA",
    "POSTINSTALL",
    "STATE_FILE",
    "BuildOptions",
    "BuildSummary",
    "build_stack",
    "check_locks",
    "default_build_dir",
    "layer_dir",
    "read_state",
    "runtime_python",
]

#: Set when the user interrupts a build: layers still building are discarded, never swapped in.
CANCELLED = threading.Event()

#: Bump when the layout of built layers changes, so old builds are rebuilt.
BUILD_FORMAT = 2


@dataclass
class BuildOptions:
    """How to build: where, how many layers at once, which runtime source."""

    build_dir: Path
    jobs: int = 2
    runtime_source: str = "auto"
    python_overrides: Mapping[str, Path] = field(default_factory=dict)


@dataclass
class BuildSummary:
    """Per layer: built, unchanged, skipped (other platform), failed or blocked."""

    build_dir: Path
    states: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no layer failed."""
        return not self.errors

    def as_dict(self) -> dict[str, Any]:
        """JSON form for ``--json`` and the notebook side."""
        return {
            "build_dir": str(self.build_dir),
            "layers": self.states,
            "errors": self.errors,
            "notes": self.notes,
            "ok": self.ok,
        }


def layer_dir(options: BuildOptions, layer: LayerSpec) -> Path:
    """Where a built layer lives: ``<build dir>/<build-name>``, checked to be inside it.

    Every directory a build writes (the layer, its staging copy and old copy beside it) is
    derived from this path, so this one check keeps a build inside the build dir.
    """
    return inside(
        options.build_dir, options.build_dir / layer.build_name, what=f"layer {layer.build_name}"
    )


def _state_inputs(spec: StackSpec, layer: LayerSpec, options: BuildOptions) -> dict[str, Any]:
    """Everything a built layer depends on; its hash decides whether to rebuild."""
    inputs: dict[str, Any] = {
        "format": BUILD_FORMAT,
        "lock": sha256_file(lock_path(spec, layer)),
        "lower": list(layer.lower),
    }
    if layer.kind is Kind.RUNTIME:
        # Only the request counts, not where the interpreter came from: a build run without the
        # same --python/--runtime-source options (e.g. from a notebook) must not rebuild it.
        inputs["implementation"] = layer.python_implementation
    else:
        runtime_state = read_state(options.build_dir / layer.runtime)
        inputs["runtime"] = runtime_state.get("runtime", {}).get("version")
        if layer.kind is Kind.APPLICATION and layer.launch_module is not None:
            inputs["modules"] = [
                (p.name, tree_hash(p)) for p in [layer.launch_module, *layer.support_modules]
            ]
    return inputs


def _is_current(path: Path, inputs_hash: str) -> bool:
    """True when the layer at ``path`` was built from exactly these inputs and looks whole."""
    state = read_state(path)
    return state.get("inputs_hash") == inputs_hash and (path / "bin").is_dir()


def _build_one(spec: StackSpec, layer: LayerSpec, options: BuildOptions, reporter: Reporter) -> str:
    """Build one layer if its inputs changed; returns its state for the summary.

    The caller holds the build lock, so finishing an interrupted swap of this layer first is safe.
    """
    t0 = time.monotonic()
    name = layer.build_name
    final = layer_dir(options, layer)
    reporter.layer_started(name, "checking")
    recover(journal_for(final))
    inputs = _state_inputs(spec, layer, options)
    inputs_hash = sha256_text(json.dumps(inputs, sort_keys=True, default=str))
    if _is_current(final, inputs_hash):
        reporter.layer_finished(name, "unchanged", time.monotonic() - t0)
        return "unchanged"
    built = new_staging_dir(final)
    try:
        if layer.kind is Kind.RUNTIME:
            extra = _build_runtime(spec, layer, options, built, reporter)
        else:
            extra = _build_venv_layer(spec, layer, options, built, final, reporter)
        write_state(built, inputs_hash, extra)
        if CANCELLED.is_set():
            raise KeyboardInterrupt
        reporter.step(name, "swapping in")
        fix_activate_scripts(built, final)
        swap_in(built, final)
    except BaseException:
        discard(built)
        raise
    reporter.layer_finished(name, "built", time.monotonic() - t0)
    return "built"


def _build_runtime(
    spec: StackSpec, layer: LayerSpec, options: BuildOptions, built: Path, reporter: Reporter
) -> dict[str, Any]:
    """Provision the interpreter, install the runtime's own requirements, write metadata."""
    name = layer.build_name
    reporter.step(name, f"finding {layer.python_implementation}")
    choice = choose_interpreter(
        layer.python_implementation,
        options.runtime_source,
        options.python_overrides,
        dict(os.environ),
    )
    reporter.note(f"{name}: {choice.source} runtime {choice.version} ({choice.origin})")
    warnings = [choice.warning] if choice.warning else []
    for warning in warnings:
        reporter.note(f"warning: {name}: {warning}")
    reporter.step(name, f"copying {choice.source} CPython {choice.version}")
    info = build_runtime(choice, built, log=lambda msg: reporter.step(name, msg))
    info = {**info, "requested": layer.python_implementation, "warnings": warnings}
    python = runtime_python(built)
    if layer.requirements:
        reporter.step(name, "installing runtime requirements")
        install_lock(python, lock_path(spec, layer), index_env=install_index_env(spec))
        fix_script_shebangs(built)
    py_version = str(info.get("version", choice.version))
    write_layer_metadata(
        built,
        python="bin/python3",
        py_version=py_version,
        base_python="bin/python3",
        site_dir=f"lib/python{layer.py_minor}/site-packages",
        pylib_dirs=[],
        dynlib_dirs=[],
        launch_module=None,
        extra={"kernelstacks": {"kind": "runtime", "layer": name, "runtime": info}},
    )
    return {"runtime": {**info, "version": py_version}}


def _build_venv_layer(
    spec: StackSpec,
    layer: LayerSpec,
    options: BuildOptions,
    built: Path,
    final: Path,
    reporter: Reporter,
) -> dict[str, Any]:
    """A venv on the runtime, chained to its lower layers, filled from its lock."""
    name = layer.build_name
    runtime_dir = options.build_dir / layer.runtime
    lowers = [options.build_dir / n for n in layer.lower]
    runtime_state = read_state(runtime_dir)
    py_version = runtime_state.get("runtime", {}).get("version", layer.py_version)
    reporter.step(name, "creating venv")
    create_layer_venv(runtime_python(runtime_dir), built)
    write_chain(built, layer.py_minor, lowers, final_dir=final)
    python = built / "bin" / "python"
    reporter.step(name, "installing packages")
    install_lock(python, lock_path(spec, layer), index_env=install_index_env(spec))
    if layer.kind is Kind.APPLICATION:
        reporter.step(name, "adding launch modules")
        _copy_modules(layer, site_packages(built, layer.py_minor))
    reporter.step(name, "linking native libraries")
    excluded = {options.build_dir / n: spec.layers[n].dynlib_exclude for n in layer.lower}
    patched = link_native_libs(built, lowers, dynlib_exclude=excluded)
    reporter.step(name, "compiling bytecode")
    compile_layer(built, python)
    fix_script_shebangs(built)
    site_dir = f"lib/python{layer.py_minor}/site-packages"
    write_layer_metadata(
        built,
        python="bin/python",
        py_version=py_version,
        base_python=os.path.relpath(runtime_python(runtime_dir), options.build_dir / name),
        site_dir=site_dir,
        pylib_dirs=[os.path.relpath(low / site_dir, options.build_dir / name) for low in lowers],
        dynlib_dirs=[],
        launch_module=layer.launch_module_name,
        extra={
            "kernelstacks": {
                "kind": layer.kind.value,
                "layer": name,
                "lower_layers": list(layer.lower),
                "native_links": patched,
            }
        },
    )
    return {"lower": list(layer.lower), "native_links": patched}


def _copy_modules(layer: LayerSpec, site_dir: Path) -> None:
    """Copy launch and support modules into site-packages, without caches or VCS files."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".git*")
    for source in [layer.launch_module, *layer.support_modules]:
        if source is None:
            continue
        target = site_dir / source.name
        if source.is_dir():
            shutil.copytree(source, target, ignore=ignore)
        else:
            shutil.copyfile(source, target)


def check_locks(spec: StackSpec, layers: list[LayerSpec]) -> None:
    """Building needs a valid lock for every layer; say exactly which are missing or stale."""
    bad = []
    for layer in layers:
        status = lock_status(spec, layer)
        if not status.valid:
            bad.append(f"{layer.build_name} ({status.reason or status.state})")
    if bad:
        raise KernelstacksError(
            f"{spec.path}: these layers have no valid lock: {', '.join(bad)}. "
            "Run 'kernelstacks lock' first, or build with --lock-if-needed."
        )


def build_stack(
    spec: StackSpec,
    include: list[str] | None,
    options: BuildOptions,
    reporter: Reporter | None = None,
) -> BuildSummary:
    """Build the selected layers in dependency order, independent ones in parallel."""
    reporter = reporter or Reporter()
    CANCELLED.clear()  # a Ctrl-C of an earlier build in this process must not cancel this one
    summary = BuildSummary(options.build_dir)
    platform = current_platform()
    layers = spec.with_lower(include)
    todo = [layer for layer in layers if platform in layer.platforms]
    for layer in layers:
        if layer not in todo:
            summary.states[layer.build_name] = "skipped"
            summary.notes.append(f"{layer.build_name} is not built for {platform}")
            reporter.note(f"skipping {layer.build_name}: not built for {platform}")
    check_locks(spec, todo)
    ensure_dir(options.build_dir, "build directory")
    doing = f"building {options.build_dir}"
    with (
        exclusive(stack_lock(spec.root), reporter.note, doing, optional=True),
        exclusive(options.build_dir / ".kernelstacks-build.lock", reporter.note, doing),
    ):
        clean_leftovers(options.build_dir)
        reporter.start("build", [layer.build_name for layer in todo])
        outcomes = run_in_order(
            [layer.build_name for layer in todo],
            lambda n: spec.layers[n].lower,
            lambda n: _build_one(spec, spec.layers[n], options, reporter),
            jobs=options.jobs,
            cancel=CANCELLED,
            verb="built",
            tell=reporter.note,
        )
    states, errors = summarize(outcomes, "built", describe_error)
    summary.states.update(states)
    summary.errors.update(errors)
    for name, message in errors.items():
        reporter.error(name, message)
    reporter.done(summary.as_dict())
    return summary

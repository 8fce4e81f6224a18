"""``kernelstacks lock``: lock every selected layer, lower layers first.

Each layer resolves with its lower layers' pins as constraints (see
:mod:`kernelstacks.lock.resolve`), so the lower layers must be locked, and valid, before the layers
above them. ``--if-needed`` keeps every valid lock (venvstacks' rule, see
:mod:`kernelstacks.lock.metadata`) and only refreshes what venvstacks refreshes; a relock that
produces the same packages leaves the lock file and its metadata as they were (see
:mod:`kernelstacks.lock.tree`), so unchanged stacks stay unchanged in version control. Layers with
no target platform (``platforms = []``) are disabled: venvstacks neither locks nor builds them,
and neither do we.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kernelstacks._support.errors import KernelstacksError, describe_error
from kernelstacks._support.filelocks import exclusive, stack_lock
from kernelstacks._support.progress import Reporter
from kernelstacks._support.scheduler import run_in_order, summarize
from kernelstacks._support.versions import PythonVersion
from kernelstacks.lock.indexes import layer_uv_settings
from kernelstacks.lock.metadata import lock_path, lock_status
from kernelstacks.lock.pylock import LowerLock
from kernelstacks.lock.tree import commit_lock, refresh_valid
from kernelstacks.spec.fields import Kind
from kernelstacks.spec.model import LayerSpec, StackSpec


@dataclass
class LockSummary:
    """What ``lock`` did, per layer: ``locked``, ``unchanged``, ``valid`` (skipped), ``failed``."""

    states: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when no layer failed."""
        return not self.errors

    def as_dict(self) -> dict[str, Any]:
        """JSON form (``--json`` and the notebook side)."""
        return {"layers": self.states, "errors": self.errors, "ok": self.ok}


@dataclass
class LockOptions:
    """Where uv may find an interpreter for resolving (``uv lock`` needs one of the layer's X.Y)."""

    runtime_source: str = "auto"
    python_overrides: dict[str, Path] = field(default_factory=dict)
    build_dir: Path | None = None
    _found: dict[str, Path] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def python_for(self, spec: StackSpec, layer: LayerSpec) -> Path:
        """An interpreter of the layer's X.Y: ours, the built runtime, or a found one."""
        if layer.python_version.xy_tuple == sys.version_info[:2]:
            return Path(sys.executable)
        xy = layer.py_minor
        with self._guard:
            if xy not in self._found:
                self._found[xy] = self._find(spec, layer)
            return self._found[xy]

    def _find(self, spec: StackSpec, layer: LayerSpec) -> Path:
        build_dir = self.build_dir or spec.root / "_build"
        built = build_dir / layer.runtime_build_name / "bin" / "python3"
        if built.exists():
            return built
        from kernelstacks.interpreters.discovery import RuntimeProvisionError, choose_interpreter

        try:
            choice = choose_interpreter(
                layer.python_implementation,
                self.runtime_source,
                self.python_overrides,
                dict(os.environ),
            )
        except RuntimeProvisionError as exc:
            # A lock depends on X.Y only (``requires-python = "==X.Y.*"``): when the exact
            # X.Y.Z the runtime asks for is not here, any X.Y interpreter resolves the same.
            try:
                name = layer.python_implementation.partition("@")[0]
                choice = choose_interpreter(
                    f"{name}@{layer.py_minor}",
                    self.runtime_source,
                    self._xy_overrides(name, layer.py_minor),
                    dict(os.environ),
                )
            except RuntimeProvisionError:
                raise KernelstacksError(
                    f"{spec.path}: runtime '{layer.runtime_build_name}': cannot find a Python "
                    f"{layer.py_version} to resolve with: {exc}"
                ) from None
        if choice.path is None:
            raise KernelstacksError(f"no interpreter found for {layer.python_implementation}")
        return choice.path

    def _xy_overrides(self, name: str, xy: str) -> dict[str, Path]:
        """``--python`` overrides given for any ``X.Y.Z`` of ``name@X.Y``, keyed ``name@X.Y``."""
        found = {}
        for key, path in self.python_overrides.items():
            impl, _, version = key.partition("@")
            try:
                same = impl == name and PythonVersion.parse(version).xy == xy
            except ValueError:
                same = False
            if same:
                found[f"{name}@{xy}"] = path
        return found


def _lower_locks(spec: StackSpec, layer: LayerSpec) -> list[LowerLock]:
    """The lower layers' locks in venvstacks' constraint order: runtime, then frameworks."""
    lower = spec.lower_layers(layer)
    ordered = [low for low in lower if low.kind is Kind.RUNTIME]
    ordered += [low for low in lower if low.kind is not Kind.RUNTIME]
    return [LowerLock(low.build_name, lock_path(spec, low)) for low in ordered]


def _lock_one(
    spec: StackSpec, layer: LayerSpec, if_needed: bool, reporter: Reporter, options: LockOptions
) -> str:
    """Lock one layer; returns the state for the summary."""
    from kernelstacks.lock.resolve import LockRequest, lock_layer

    t0 = time.monotonic()
    reporter.layer_started(layer.build_name, "locking")
    if not layer.platforms:
        message = "no target platforms (platforms = []): the layer is disabled"
        reporter.layer_finished(layer.build_name, "skipped", time.monotonic() - t0, message)
        return "skipped"
    status = lock_status(spec, layer)
    if if_needed and status.valid:
        refresh_valid(spec, layer)
        reporter.layer_finished(layer.build_name, "valid", time.monotonic() - t0, status.note)
        return "valid"
    target = lock_path(spec, layer)
    target.parent.mkdir(parents=True, exist_ok=True)
    request = LockRequest(
        layer=layer.build_name,
        requirements=list(layer.requirements),
        python_version=layer.py_version,
        platforms=list(layer.platforms),
        lower_locks=_lower_locks(spec, layer),
        uv_settings=layer_uv_settings(spec, layer),
        linux_target=layer.glibc_target,
        macosx_target=layer.macosx_target,
        python=options.python_for(spec, layer),
    )
    reporter.step(layer.build_name, "resolving with uv")
    with tempfile.TemporaryDirectory(prefix="kernelstacks-lock-") as tmp:
        # The fresh lock is made outside requirements/: the tree only changes if the lock does.
        scratch = Path(tmp) / target.name
        result = lock_layer(request, scratch, lock_dir=target.parent)
        state = commit_lock(spec, layer, scratch, result)
    for warning in result.warnings:
        reporter.note(warning)
    count = len(result.packages)
    message = f"{count} package{'s' * (count != 1)}"
    if result.provided_by_lower:
        message += f", {len(result.provided_by_lower)} from lower layers"
    reporter.layer_finished(layer.build_name, state, time.monotonic() - t0, message)
    return state


def lock_stack(
    spec: StackSpec,
    include: list[str] | None = None,
    *,
    if_needed: bool = False,
    jobs: int = 2,
    reporter: Reporter | None = None,
    options: LockOptions | None = None,
) -> LockSummary:
    """Lock the selected layers (and those below them) in dependency order."""
    reporter = reporter or Reporter()
    options = options or LockOptions()
    layers = spec.with_lower(include)
    summary = LockSummary()
    # never under requirements/; shared with build and publish of this stack
    with exclusive(stack_lock(spec.root), reporter.note, f"locking {spec.path}"):
        reporter.start("lock", [layer.build_name for layer in layers])
        outcomes = run_in_order(
            [layer.build_name for layer in layers],
            lambda n: spec.layers[n].lower,
            lambda n: _lock_one(spec, spec.layers[n], if_needed, reporter, options),
            jobs=jobs,
            verb="locked",
            tell=reporter.note,
        )
    summary.states, summary.errors = summarize(outcomes, "locked", describe_error)
    for name, message in summary.errors.items():
        reporter.error(name, message)
    reporter.done(summary.as_dict())
    return summary

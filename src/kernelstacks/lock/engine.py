"""``kernelstacks lock``: lock every selected layer, lower layers first.

Each layer resolves with its lower layers' pins as constraints (see
:mod:`kernelstacks.lock.resolve`), so the lower layers must be locked, and valid, before the layers
above them. A lock whose inputs have not changed is left byte-identical under ``--if-needed``; a
relock that produces the same packages keeps the old metadata (lock version and time), so unchanged
stacks stay unchanged in version control.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kernelstacks._support.atomic import write_json
from kernelstacks._support.errors import KernelstacksError, describe_error
from kernelstacks._support.filelocks import exclusive
from kernelstacks._support.hashing import sha256_file, sha256_text, tree_hash
from kernelstacks._support.progress import Reporter
from kernelstacks._support.scheduler import run_in_order, summarize
from kernelstacks.lock.indexes import layer_uv_settings
from kernelstacks.lock.metadata import input_hash, lock_path, lock_status, meta_path, read_meta
from kernelstacks.spec.fields import Kind
from kernelstacks.spec.model import LayerSpec, StackSpec
from kernelstacks_kernel.contract import REQUIREMENTS_DIR


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


def version_inputs(spec: StackSpec, layer: LayerSpec) -> str:
    """What makes a new lock *version*: the lock content, plus the launch module for apps."""
    parts = [sha256_file(lock_path(spec, layer))]
    if layer.kind is Kind.APPLICATION and layer.launch_module is not None:
        parts.append(layer.launch_module_name or "")
        parts.extend(tree_hash(p) for p in [layer.launch_module, *layer.support_modules])
    return sha256_text("\n".join(parts))


@dataclass
class LockOptions:
    """Where uv may find an interpreter for resolving (uv lock needs one >= the layer's X.Y)."""

    runtime_source: str = "auto"
    python_overrides: dict[str, Path] = field(default_factory=dict)
    build_dir: Path | None = None
    _found: dict[str, Path] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def python_for(self, spec: StackSpec, layer: LayerSpec) -> Path:
        """An interpreter of at least the layer's X.Y: ours, the built runtime, or a found one."""
        if layer.python_version.xy_tuple <= sys.version_info[:2]:
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
            raise KernelstacksError(
                f"{spec.path}: runtime '{layer.runtime_build_name}': cannot find a Python "
                f"{layer.py_version} to resolve with: {exc}"
            ) from None
        if choice.path is None:
            raise KernelstacksError(f"no interpreter found for {layer.python_implementation}")
        return choice.path


def _lock_one(
    spec: StackSpec, layer: LayerSpec, if_needed: bool, reporter: Reporter, options: LockOptions
) -> str:
    """Lock one layer; returns the state for the summary."""
    from kernelstacks.lock.resolve import LockRequest, lock_layer

    t0 = time.monotonic()
    reporter.layer_started(layer.build_name, "locking")
    if if_needed and lock_status(spec, layer).valid:
        reporter.layer_finished(layer.build_name, "valid", time.monotonic() - t0)
        return "valid"
    target = lock_path(spec, layer)
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = target.with_name(f".{target.name}.new")
    request = LockRequest(
        layer=layer.build_name,
        requirements=list(layer.requirements),
        python_version=layer.py_minor,
        platforms=list(layer.platforms),
        lower_locks=[lock_path(spec, low) for low in spec.lower_layers(layer)],
        uv_settings=layer_uv_settings(spec, layer),
        linux_target=layer.glibc_target,
        macosx_target=layer.macosx_target,
        python=options.python_for(spec, layer),
    )
    reporter.step(layer.build_name, "resolving with uv")
    try:
        result = lock_layer(request, scratch)
        state = _commit_lock(spec, layer, scratch, result)
    finally:
        scratch.unlink(missing_ok=True)
    count = len(result.packages)
    message = f"{count} package{'s' * (count != 1)}"
    if result.provided_by_lower:
        message += f", {len(result.provided_by_lower)} from lower layers"
    reporter.layer_finished(layer.build_name, state, time.monotonic() - t0, message)
    return state


def _commit_lock(spec: StackSpec, layer: LayerSpec, scratch: Path, result: Any) -> str:
    """Move a fresh lock into place and write its metadata; keep metadata when unchanged."""
    target = lock_path(spec, layer)
    old_meta = read_meta(spec, layer)
    same = target.is_file() and target.read_bytes() == scratch.read_bytes()
    if not same:
        os.replace(scratch, target)
    version_hash = version_inputs(spec, layer)
    old_version = old_meta.get("lock_version") if old_meta else None
    if not isinstance(old_version, int):
        old_version = 0
    changed = not old_meta or old_meta.get("version_inputs_hash") != version_hash
    lock_version = max(old_version, 1) + (1 if changed and old_version else 0)
    meta = {
        "layer_name": layer.build_name,
        "requirements_hash": sha256_text(json.dumps(list(layer.requirements))),
        "lock_input_hash": input_hash(spec, layer),
        "other_inputs_hash": input_hash(spec, layer),
        "version_inputs_hash": version_hash,
        "lock_hash": sha256_file(target),
        "lock_version": lock_version if layer.versioned else 1,
        "locked_at": (old_meta or {}).get("locked_at") if not changed else _now(),
        "packages": result.packages,
        "provided_by_lower": result.provided_by_lower,
    }
    if old_meta == meta:
        return "unchanged"
    write_json(meta_path(spec, layer), meta, durable=True)
    return "locked" if changed else "unchanged"


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


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
    waiting = "another kernelstacks lock is running on this stack; waiting for it"
    lock_file = spec.root / REQUIREMENTS_DIR / ".kernelstacks-lock.lock"
    with exclusive(lock_file, lambda: reporter.note(waiting)):
        reporter.start("lock", [layer.build_name for layer in layers])
        outcomes = run_in_order(
            [layer.build_name for layer in layers],
            lambda n: spec.layers[n].lower,
            lambda n: _lock_one(spec, spec.layers[n], if_needed, reporter, options),
            jobs=jobs,
        )
    summary.states, summary.errors = summarize(outcomes, "locked", describe_error)
    for name, message in summary.errors.items():
        reporter.error(name, message)
    reporter.done(summary.as_dict())
    return summary

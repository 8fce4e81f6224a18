"""Lock files and their metadata, where venvstacks keeps them.

Per layer, ``requirements/<build-name>/`` holds ``pylock.<build-name>.toml`` (PEP 751) and
``pylock.<build-name>.meta.json`` with the hash of the lock's inputs, the lock version and the
lock time.  A lock is *valid* while its inputs hash the same: that is what ``--if-needed`` and
``show`` check, without running uv.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kernelstacks._support.atomic import read_json
from kernelstacks._support.hashing import sha256_file, sha256_text
from kernelstacks.spec.model import LayerSpec, StackSpec
from kernelstacks_kernel.contract import lock_file_name, lock_meta_file_name


def lock_path(spec: StackSpec, layer: LayerSpec) -> Path:
    """``requirements/<build-name>/pylock.<build-name>.toml``."""
    return spec.requirements_dir(layer) / lock_file_name(layer.build_name)


def meta_path(spec: StackSpec, layer: LayerSpec) -> Path:
    """``requirements/<build-name>/pylock.<build-name>.meta.json``."""
    return spec.requirements_dir(layer) / lock_meta_file_name(layer.build_name)


def lock_inputs(spec: StackSpec, layer: LayerSpec) -> dict[str, Any]:
    """Everything a layer's lock depends on; its hash decides whether the lock is valid."""
    lowers = {}
    for low in spec.lower_layers(layer):
        path = lock_path(spec, low)
        lowers[low.build_name] = sha256_file(path) if path.is_file() else None
    return {
        "requirements": list(layer.requirements),
        "python": layer.py_minor,
        "platforms": list(layer.platforms),
        "lower_locks": lowers,
        "linux_target": layer.linux_target,
        "macosx_target": layer.macosx_target,
        "uv": spec.uv_settings,
        "priority_indexes": list(layer.priority_indexes),
        "package_indexes": layer.package_indexes,
        "index_overrides": layer.index_overrides,
    }


def input_hash(spec: StackSpec, layer: LayerSpec) -> str:
    """Stable hash of :func:`lock_inputs`."""
    inputs = lock_inputs(spec, layer)
    return sha256_text(json.dumps(inputs, sort_keys=True, default=str))


@dataclass(frozen=True)
class LockStatus:
    """Whether a layer's lock exists and still matches its inputs."""

    state: str  # "valid" | "missing" | "stale" | "corrupt"
    lock_version: int | None = None
    locked_at: str | None = None
    reason: str = ""

    @property
    def valid(self) -> bool:
        """True when the lock can be used as it is."""
        return self.state == "valid"

    def as_dict(self) -> dict[str, Any]:
        """JSON form for ``show --json``."""
        return {
            "state": self.state,
            "lock_version": self.lock_version,
            "locked_at": self.locked_at,
            "reason": self.reason,
        }


def read_meta(spec: StackSpec, layer: LayerSpec) -> dict[str, Any] | None:
    """The metadata JSON, or None when absent or unreadable."""
    return read_json(meta_path(spec, layer))


def lock_status(spec: StackSpec, layer: LayerSpec) -> LockStatus:
    """Compare the stored input hash with the current one (no uv involved)."""
    if not lock_path(spec, layer).is_file():
        return LockStatus("missing", reason="no lock file")
    meta = read_meta(spec, layer)
    if meta is None:
        return LockStatus("corrupt", reason="lock metadata missing or unreadable")
    version = meta.get("lock_version") if isinstance(meta.get("lock_version"), int) else None
    locked_at = meta.get("locked_at") if isinstance(meta.get("locked_at"), str) else None
    if meta.get("lock_input_hash") != input_hash(spec, layer):
        return LockStatus("stale", version, locked_at, "inputs changed since the lock")
    if meta.get("lock_hash") != sha256_file(lock_path(spec, layer)):
        return LockStatus("stale", version, locked_at, "lock file edited since it was written")
    for low in spec.lower_layers(layer):
        if not lock_status(spec, low).valid:
            return LockStatus("stale", version, locked_at, f"lower layer {low.build_name}")
    return LockStatus("valid", version, locked_at)

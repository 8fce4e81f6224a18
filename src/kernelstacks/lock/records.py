"""kernelstacks' own record of each lock, kept where venvstacks never looks.

``.kernelstacks/locks/<build name>.json`` beside the stack file (never under ``requirements/``,
whose files must stay exactly venvstacks') records, for the lock it was written with:

* ``requirements_hash``: which lock it describes. A record whose hash differs from the lock's
  metadata describes an older lock (venvstacks or a teammate relocked since) and is ignored;
* ``lower``: each lower layer's ``requirements_hash`` at the time. venvstacks' validity does not
  look at lower locks, so a lower layer relocked on its own leaves the layers above "valid"; the
  record lets kernelstacks call them stale instead;
* ``platforms`` the layer was locked for (venvstacks' hashes leave them out);
* ``uv_settings_hash``: the layer's uv settings. Changing them does not invalidate a lock (as for
  venvstacks), but ``show`` and ``lock --if-needed`` say so;
* ``provided_by_lower``: which lower layer provides each shared package, and its version.

Without a record (a tree venvstacks wrote, a fresh clone) venvstacks' rules alone apply.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kernelstacks._support.atomic import read_json, write_json
from kernelstacks._support.hashing import sha256_text
from kernelstacks._support.paths import inside
from kernelstacks.lock.errors import LockError
from kernelstacks.lock.fingerprints import requirements_hash
from kernelstacks.lock.indexes import layer_uv_settings
from kernelstacks.spec.model import LayerSpec, StackSpec
from kernelstacks_kernel.contract import STATE_DIR, lock_file_rel, lock_record_rel


def record_path(spec: StackSpec, layer: LayerSpec) -> Path:
    """``.kernelstacks/locks/<build name>.json`` beside the stack file (checked to stay there)."""
    path = spec.root / lock_record_rel(layer.build_name)
    return inside(spec.root / STATE_DIR, path, what=f"lock record of {layer.build_name}")


def uv_settings_hash(spec: StackSpec, layer: LayerSpec) -> str:
    """Hash of the uv settings a layer is locked with."""
    return sha256_text(json.dumps(layer_uv_settings(spec, layer), sort_keys=True, default=str))


def _lower_hashes(spec: StackSpec, layer: LayerSpec) -> dict[str, str | None]:
    hashes: dict[str, str | None] = {}
    for low in spec.lower_layers(layer):
        try:
            hashes[low.build_name] = requirements_hash(spec.root / lock_file_rel(low.build_name))
        except LockError:
            hashes[low.build_name] = None
    return hashes


def write_record(
    spec: StackSpec, layer: LayerSpec, locked: str, provided: dict[str, dict[str, str]]
) -> None:
    """Record what the lock with ``requirements_hash`` ``locked`` was made from."""
    record = {
        "layer": layer.build_name,
        "requirements_hash": locked,
        "lower": _lower_hashes(spec, layer),
        "platforms": sorted(layer.platforms),
        "uv_settings_hash": uv_settings_hash(spec, layer),
        "provided_by_lower": provided,
    }
    if read_json(record_path(spec, layer)) != record:
        write_json(record_path(spec, layer), record)


def read_record(spec: StackSpec, layer: LayerSpec) -> dict[str, Any] | None:
    """The record of a layer's lock, or None."""
    return read_json(record_path(spec, layer))


@dataclass(frozen=True)
class Findings:
    """What the record says about a lock: why it is stale ("" if not), and a remark."""

    stale: str = ""
    note: str = ""


def record_findings(spec: StackSpec, layer: LayerSpec, locked: str) -> Findings:
    """Compare the record of the lock whose ``requirements_hash`` is ``locked`` with today."""
    record = read_record(spec, layer)
    if record is None or record.get("requirements_hash") != locked:
        return Findings()
    recorded_lower = record.get("lower")
    if isinstance(recorded_lower, dict):
        for name, current in _lower_hashes(spec, layer).items():
            if name in recorded_lower and recorded_lower[name] != current:
                return Findings(stale=f"lower layer {name} was relocked since this lock")
    if record.get("platforms") != sorted(layer.platforms):
        return Findings(stale="target platforms changed since the lock")
    if record.get("uv_settings_hash") != uv_settings_hash(spec, layer):
        return Findings(
            note="uv settings changed since this lock (a lock stays valid, as for venvstacks; "
            f"'kernelstacks lock --include {layer.name}' applies them)"
        )
    return Findings()

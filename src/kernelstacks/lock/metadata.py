"""Lock files and their metadata where venvstacks keeps them, and venvstacks' rule for validity.

Per layer, ``requirements/<build name>/`` holds ``pylock.<N>.toml`` (PEP 751) and
``pylock.<N>.meta.json``, N being the build name with ``.`` replaced by ``_``. The metadata holds
venvstacks' six keys: ``lock_input_hash``, ``requirements_hash``, ``other_inputs_hash``,
``version_inputs_hash`` (:mod:`kernelstacks.lock.fingerprints`), ``lock_version`` and
``locked_at``.

A lock is *valid*, as for venvstacks, when its metadata exists and the hashes recompute equal
(``version_inputs_hash`` only for versioned layers) and every lower layer's lock is valid; uv
settings and target platforms are not part of it. On top of that, kernelstacks' own record
(:mod:`kernelstacks.lock.records`, outside ``requirements/``) can say that a lower layer was
relocked since, which makes the lock stale too. No uv is run to decide any of this.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from kernelstacks._support.atomic import read_json
from kernelstacks._support.paths import inside
from kernelstacks.lock.errors import LockError
from kernelstacks.lock.fingerprints import Fingerprint, requirements_hash
from kernelstacks.lock.records import record_findings
from kernelstacks.spec.model import LayerSpec, StackSpec
from kernelstacks_kernel.contract import REQUIREMENTS_DIR, lock_file_name, lock_meta_file_name

#: The keys of venvstacks' lock metadata, in the order it documents them.
META_KEYS = (
    "requirements_hash",
    "lock_input_hash",
    "other_inputs_hash",
    "version_inputs_hash",
    "lock_version",
    "locked_at",
)


def lock_path(spec: StackSpec, layer: LayerSpec) -> Path:
    """``requirements/<build name>/pylock.<N>.toml`` (checked to be inside ``requirements/``)."""
    return _layer_folder(spec, layer) / lock_file_name(layer.build_name)


def meta_path(spec: StackSpec, layer: LayerSpec) -> Path:
    """``requirements/<build name>/pylock.<N>.meta.json`` (checked like :func:`lock_path`)."""
    return _layer_folder(spec, layer) / lock_meta_file_name(layer.build_name)


def _layer_folder(spec: StackSpec, layer: LayerSpec) -> Path:
    """``requirements/<build name>/``, checked to be a folder of its own in ``requirements/``."""
    folder = spec.requirements_dir(layer)
    return inside(spec.root / REQUIREMENTS_DIR, folder, what=f"lock folder of {layer.build_name}")


def read_meta(spec: StackSpec, layer: LayerSpec) -> dict[str, Any] | None:
    """The metadata JSON, or None when absent or unreadable."""
    return read_json(meta_path(spec, layer))


def parse_locked_at(value: object) -> datetime | None:
    """``locked_at`` as an aware datetime; None when missing or not ISO 8601 with a zone."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


@dataclass(frozen=True)
class LockStatus:
    """Whether a layer's lock exists and still matches its inputs."""

    state: str  # "valid" | "missing" | "stale" | "corrupt"
    lock_version: int | None = None
    locked_at: str | None = None
    reason: str = ""
    note: str = ""  # something worth saying about a valid lock (e.g. uv settings changed)

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
            "note": self.note,
        }


def _mismatch(layer: LayerSpec, meta: dict[str, Any], fp: Fingerprint, locked: str) -> str:
    """Why the recorded hashes do not match the current ones ("" when they all do)."""
    if meta.get("lock_input_hash") != fp.lock_input_hash:
        return "requirements changed since the lock"
    if meta.get("requirements_hash") != locked:
        return "lock file changed since its metadata was written"
    if meta.get("other_inputs_hash") != fp.other_inputs_hash:
        return "runtime Python version, linux/macosx target or lower layers changed since the lock"
    if layer.versioned and meta.get("version_inputs_hash") != fp.version_inputs_hash:
        return "layer name, versioning or launch/support modules changed since the lock"
    return ""


def lock_status(
    spec: StackSpec, layer: LayerSpec, _seen: dict[str, LockStatus] | None = None
) -> LockStatus:
    """venvstacks' validity of a layer's lock, plus kernelstacks' own record (see above)."""
    seen = {} if _seen is None else _seen
    if layer.build_name not in seen:
        seen[layer.build_name] = _status(spec, layer, seen)
    return seen[layer.build_name]


def _status(spec: StackSpec, layer: LayerSpec, seen: dict[str, LockStatus]) -> LockStatus:
    path = lock_path(spec, layer)
    if not path.is_file():
        return LockStatus("missing", reason="no lock file")
    if not meta_path(spec, layer).is_file():
        return LockStatus("stale", reason=f"no lock metadata ({meta_path(spec, layer).name})")
    meta = read_meta(spec, layer)
    if meta is None:
        return LockStatus("corrupt", reason=f"{meta_path(spec, layer).name} is not a JSON object")
    try:
        locked = requirements_hash(path) or ""
    except LockError as exc:
        return LockStatus("corrupt", reason=str(exc))
    raw_version = meta.get("lock_version", 1)
    version = (raw_version if isinstance(raw_version, int) else None) if layer.versioned else 1
    locked_at = parse_locked_at(meta.get("locked_at"))
    stamp = meta.get("locked_at") if isinstance(meta.get("locked_at"), str) else None
    if locked_at is None:
        return LockStatus("corrupt", version, stamp, "locked_at is missing or not a UTC timestamp")
    reason = _mismatch(layer, meta, Fingerprint.of(spec, layer), locked)
    if not reason:
        for low in spec.lower_layers(layer):
            if not lock_status(spec, low, seen).valid:
                reason = f"lower layer {low.build_name} has no valid lock"
                break
    findings = record_findings(spec, layer, locked)
    reason = reason or findings.stale
    if reason:
        return LockStatus("stale", version, stamp, reason)
    return LockStatus("valid", version, stamp, note=findings.note)

"""The four hashes of a lock's metadata, computed exactly as venvstacks 0.8 computes them.

venvstacks decides whether a committed lock is valid by recomputing these hashes and comparing them
with ``pylock.<N>.meta.json``; kernelstacks does the same, so a lock either tool wrote is valid for
the other. Each hash is venvstacks' ``hash_strings``: SHA-256 over the strings concatenated with no
separator, written ``sha256:<hex>``.

* ``lock_input_hash``: the declared requirements, as lines of a requirements file (comments and
  ``--hash`` lines dropped), sorted.
* ``requirements_hash``: the *locked* packages: ``name==version ; marker from <index>`` per entry
  and ``<wheel>:<algorithm>:<hash>`` per wheel hash, sorted (see :func:`requirements_hash_text`).
* ``other_inputs_hash``: ``py_version=X.Y``, ``linux_target=...``/``macosx_target=...`` when set,
  then (framework and application layers) the runtime's build name and the frameworks' names in
  ``sys.path`` order. Target platforms and uv settings are *not* part of it.
* ``version_inputs_hash``: ``env_name=<build name>``, ``is_versioned_layer=<True|False>``, then
  (applications) the hashes of the launch module and the sorted support modules
  (:mod:`kernelstacks.lock.source_tree`). Only versioned layers check it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from kernelstacks.lock.errors import LockError
from kernelstacks.lock.pylock import LockedEntry, parse_entries
from kernelstacks.lock.source_tree import module_hash
from kernelstacks.spec.fields import Kind
from kernelstacks.spec.model import LayerSpec, StackSpec


def hash_strings(items: Iterable[str]) -> str:
    """venvstacks' ``hash_strings``: one SHA-256 over the items' UTF-8 bytes, no separators."""
    digest = hashlib.sha256()
    for item in items:
        digest.update(item.encode())
    return f"sha256:{digest.hexdigest()}"


def declared_requirements(requirements: Sequence[str]) -> list[str]:
    """Requirements as venvstacks writes them: ``str(Requirement(...))`` (normalised spelling)."""
    lines = []
    for text in requirements:
        try:
            lines.append(str(Requirement(text)))
        except InvalidRequirement:
            lines.append(text)  # the spec loader reports it; hash what was written
    return lines


def requirement_lines(lines: Iterable[str]) -> list[str]:
    """venvstacks' reading of a flat requirements file: no comments, no ``--hash``, sorted."""
    kept = []
    for line in lines:
        requirement = line.rstrip("\\").strip().partition("#")[0].strip()
        if requirement and "--hash" not in requirement:
            kept.append(requirement)
    return sorted(kept)


def lock_input_hash(requirements: Sequence[str]) -> str:
    """``lock_input_hash`` of a layer's declared requirements."""
    return hash_strings(requirement_lines(declared_requirements(requirements)))


def _entry_hash_inputs(entry: LockedEntry, origin: str) -> list[str]:
    items = [f"{entry.requirement} from {entry.index}"]
    for wheel in entry.wheels:
        if not wheel.name:
            raise LockError(f"{origin}: a wheel of '{entry.name}' has no file name")
        items.extend(f"{wheel.name}:{algorithm}:{value}" for algorithm, value in wheel.hashes)
    return items


def requirements_hash_text(text: str, origin: str) -> str:
    """``requirements_hash`` of pylock text: over the locked packages, in any order."""
    items: list[str] = []
    for entry in parse_entries(text, origin):
        items.extend(_entry_hash_inputs(entry, origin))
    return hash_strings(sorted(items))


def requirements_hash(path: Path) -> str | None:
    """``requirements_hash`` of a lock file; None when it does not exist."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise LockError(f"Cannot read lock file {path}: {exc}") from None
    return requirements_hash_text(text, str(path))


def other_inputs(spec: StackSpec, layer: LayerSpec) -> list[str]:
    """What besides the requirements invalidates a lock (venvstacks' "other inputs")."""
    items = [f"py_version={layer.py_minor}"]
    if layer.linux_target:
        items.append(f"linux_target={layer.linux_target}")
    if layer.macosx_target:
        items.append(f"macosx_target={layer.macosx_target}")
    if layer.kind is not Kind.RUNTIME:
        items.append(layer.runtime)
        items.extend(low.name for low in spec.lower_layers(layer) if low.kind is Kind.FRAMEWORK)
    return items


def version_inputs(spec: StackSpec, layer: LayerSpec) -> list[str]:
    """What makes a new version of a versioned layer besides its packages."""
    items = [f"env_name={layer.build_name}", f"is_versioned_layer={layer.versioned}"]
    if layer.kind is Kind.APPLICATION and layer.launch_module is not None:
        items.append(module_hash(layer.launch_module, spec.root))
        for module in sorted(layer.support_modules, key=lambda p: _spec_relative(p, spec.root)):
            items.append(module_hash(module, spec.root))
    return items


def _spec_relative(path: Path, root: Path) -> str:
    """A support module as the stack file names it (venvstacks sorts them by that text)."""
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return Path(path).as_posix()


@dataclass(frozen=True)
class Fingerprint:
    """The hashes a layer's lock metadata must hold for the lock to be valid now."""

    lock_input_hash: str
    other_inputs_hash: str
    version_inputs_hash: str

    @classmethod
    def of(cls, spec: StackSpec, layer: LayerSpec) -> Fingerprint:
        """Compute the layer's current input hashes from the stack file and module sources."""
        return cls(
            lock_input_hash=lock_input_hash(layer.requirements),
            other_inputs_hash=hash_strings(other_inputs(spec, layer)),
            version_inputs_hash=hash_strings(version_inputs(spec, layer)),
        )

"""PEP 751 ``pylock`` files as venvstacks reads them: entries, shared entries, lower-layer pins.

A layer's lock lists every package its resolution needs. A package a lower layer provides stays in
the list with venvstacks' marker ``sys_platform == 'from_lower_layer'`` (joined to its own marker
with ``and``) and no wheels: the marker is never true, so installers skip it. Such an entry is
*shared*; everything else is what the layer itself installs.

Markers are compared in venvstacks' normal form: ``str(Marker(text))`` with single quotes, the
shared clause taken off. Versions are :class:`packaging.version.Version` values, so ``1.0`` and
``1.0.0`` are the same pin, as they are for venvstacks.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

from packaging.markers import InvalidMarker, Marker
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from kernelstacks.lock.errors import LockError
from kernelstacks_kernel.contract import SHARED_PACKAGE_MARKER, SHARED_PACKAGE_TOKEN

_SHARED_SUFFIX = f" and {SHARED_PACKAGE_MARKER}"
#: What venvstacks reports as the index of an entry that names none (shared entries).
NO_INDEX = "unspecified index"

# -- entries ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LockedWheel:
    """A wheel of a lock entry: its file name and hashes (``(algorithm, value)`` in file order)."""

    name: str | None
    hashes: tuple[tuple[str, str], ...]
    local_path: Path | None = None


def wheel_details(wheel: Mapping[str, Any]) -> tuple[str | None, Path | None]:
    """A wheel's file name and local path, from ``name``, ``path`` or ``url`` (in that order)."""
    name = wheel.get("name")
    if wheel.get("path") is not None:
        local = Path(str(wheel["path"]))
        return (str(name) if name else local.name), local
    url = wheel.get("url")
    if url is None:
        return (str(name) if name else None), None
    parsed = urlparse(str(url))
    if parsed.scheme == "file":
        local = Path(url2pathname(parsed.path))
        return (str(name) if name else local.name), local
    return (str(name) if name else PurePosixPath(parsed.path.replace("\\", "/")).name), None


def normal_marker(raw: object) -> tuple[str, bool]:
    """(venvstacks' normal form of a marker without the shared clause, whether it was shared)."""
    if not raw:
        return "", False
    text = str(Marker(str(raw))).replace('"', "'")
    if SHARED_PACKAGE_TOKEN not in text:
        return text, False
    if text == SHARED_PACKAGE_MARKER:
        return "", True
    text = text.removeprefix("(").removesuffix(_SHARED_SUFFIX).removesuffix(")")
    if SHARED_PACKAGE_TOKEN in text:
        raise ValueError(f"cannot read the shared-package marker {raw!r}")
    return text, True


def shared_marker(marker: str) -> str:
    """The marker that disables an entry because a lower layer provides it."""
    return f"({marker}){_SHARED_SUFFIX}" if marker else SHARED_PACKAGE_MARKER


@dataclass(frozen=True)
class LockedEntry:
    """One ``[[packages]]`` entry, as venvstacks understands it."""

    name: str
    version: Version
    marker: str = ""
    shared: bool = False
    index: str = NO_INDEX
    wheels: tuple[LockedWheel, ...] = ()

    @property
    def requirement(self) -> str:
        """``name==version`` plus `` ; marker`` when it has one (a constraint, a summary line)."""
        suffix = f" ; {self.marker}" if self.marker else ""
        return f"{self.name}=={self.version}{suffix}"

    @property
    def key(self) -> tuple[str, Version, str]:
        """What venvstacks compares entries by: name, version and marker."""
        return (self.name, self.version, self.marker)

    def applies(self, environment: dict[str, str]) -> bool:
        """Whether the entry's own marker holds in a marker environment."""
        return not self.marker or Marker(self.marker).evaluate(environment)


def entry_from(raw: Mapping[str, Any], origin: str) -> LockedEntry:
    """Parse one ``[[packages]]`` table; a broken one is a :class:`LockError` naming ``origin``."""
    name = raw.get("name")
    if not isinstance(name, str):
        raise LockError(f"{origin}: a [[packages]] entry has no name")
    try:
        version = Version(str(raw["version"]))
        marker, shared = normal_marker(raw.get("marker"))
        wheels = []
        for wheel in raw.get("wheels", ()):
            wheel_name, local = wheel_details(wheel)
            hashes = tuple((str(k), str(v)) for k, v in dict(wheel.get("hashes", {})).items())
            wheels.append(LockedWheel(wheel_name, hashes, local))
    except KeyError:
        raise LockError(f"{origin}: package '{name}' has no version") from None
    except (InvalidVersion, InvalidMarker, ValueError, TypeError, AttributeError) as exc:
        raise LockError(f"{origin}: package '{name}' cannot be read: {exc}") from None
    index = raw.get("index")
    return LockedEntry(name, version, marker, shared, str(index or NO_INDEX), tuple(wheels))


def raw_packages(text: str, origin: str) -> list[dict[str, Any]]:
    """The ``[[packages]]`` tables of pylock text, checked just enough to use them."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LockError(f"Cannot read lock file {origin}: {exc}") from None
    packages = data.get("packages", [])
    if not isinstance(packages, list) or not all(isinstance(p, dict) for p in packages):
        raise LockError(f"Lock file {origin} has no valid [[packages]] list")
    return packages


def parse_entries(text: str, origin: str) -> list[LockedEntry]:
    """Every entry of pylock text, in file order."""
    return [entry_from(raw, origin) for raw in raw_packages(text, origin)]


def read_entries(path: Path) -> list[LockedEntry]:
    """Every entry of a lock file, in file order."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LockError(f"Cannot read lock file {path}: {exc}") from None
    return parse_entries(text, str(path))


def read_pylock(path: Path) -> dict[str, str]:
    """Normalized name -> version of what a layer installs (shared entries left out).

    A name locked to different versions on different platforms reports its first entry.
    """
    versions: dict[str, str] = {}
    for entry in read_entries(path):
        if not entry.shared:
            versions.setdefault(canonicalize_name(entry.name), str(entry.version))
    return versions


# -- lower layers' pins -------------------------------------------------------------------------


@dataclass(frozen=True)
class LowerLock:
    """The lock of a layer under the one being locked."""

    layer: str
    path: Path


@dataclass(frozen=True)
class Pin:
    """A package a lower layer installs: a constraint for the layers above it."""

    entry: LockedEntry
    layer: str
    path: Path

    @property
    def name(self) -> str:
        """The package name as the lower lock spells it."""
        return self.entry.name


def lower_pins(lower: list[LowerLock]) -> list[Pin]:
    """The constraints lower layers impose, as venvstacks derives them.

    ``lower`` is in venvstacks' order: the runtime first, then the frameworks in ``sys.path``
    order. Per package name, the first entry without a marker wins; entries with markers before it
    are kept too (once per marker), so a package a lower layer installs on some platforms only is
    pinned there. The result is sorted by name.
    """
    unconditional: dict[str, Pin] = {}
    conditional: dict[str, list[Pin]] = {}
    for lock in lower:
        for entry in read_entries(lock.path):
            if entry.shared or entry.name in unconditional:
                continue
            pin = Pin(entry, lock.layer, lock.path)
            if not entry.marker:
                unconditional[entry.name] = pin
            else:
                conditional.setdefault(entry.name, []).append(pin)
    pins: list[Pin] = []
    for name in sorted(unconditional.keys() | conditional.keys()):
        markers: set[str] = set()
        for pin in conditional.get(name, []):
            if pin.entry.marker not in markers:
                markers.add(pin.entry.marker)
                pins.append(pin)
        if name in unconditional:
            pins.append(unconditional[name])
    return pins


def pin_conflicts(lower: list[LowerLock]) -> list[tuple[Pin, Pin]]:
    """Packages two lower layers install in different versions, as (first, other) pins.

    Siblings (two frameworks under one application, neither on the other) are locked
    independently, so each may pin its own version of a package they share. Only one of them is
    imported at run time (the first in ``sys.path``), so the other layer silently runs with a
    version it was never locked with. ``lower`` is in :func:`lower_pins` order; entries with the
    same marker (or none) are compared, platform-specific ones only with the same marker.
    """
    first: dict[tuple[str, str], Pin] = {}
    conflicts: list[tuple[Pin, Pin]] = []
    for lock in lower:
        for entry in read_entries(lock.path):
            if entry.shared:
                continue
            key = (canonicalize_name(entry.name), entry.marker)
            kept = first.setdefault(key, Pin(entry, lock.layer, lock.path))
            if kept.layer != lock.layer and kept.entry.version != entry.version:
                conflicts.append((kept, Pin(entry, lock.layer, lock.path)))
    return conflicts

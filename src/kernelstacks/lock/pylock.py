"""PEP 751 ``pylock`` files: reading them, and what lower layers' locks mean for a layer's lock.

Every package a lower layer locks is pinned for the layers above it (``name==version``
constraints, with a platform marker where the lower layers differ per platform), and removed
from their locks afterwards so it is never installed twice; the lock records those packages
under ``[tool.kernelstacks.provided-by-lower]``, next to the layer it belongs to.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomlkit
from packaging.utils import canonicalize_name

from kernelstacks.lock.errors import LockError
from kernelstacks.lock.wheels import applies, platform_marker

# -- reading lock files -------------------------------------------------------------------------


def read_pylock(path: Path) -> dict[str, str]:
    """Map normalized package name -> version for every package a pylock file lists.

    A name locked to different versions on different platforms reports its first entry.
    """
    versions: dict[str, str] = {}
    for entry in _pylock_packages(path):
        versions.setdefault(canonicalize_name(entry["name"]), str(entry.get("version", "")))
    return versions


def _pylock_packages(path: Path) -> list[dict[str, Any]]:
    """The ``[[packages]]`` tables of a pylock file, checked just enough to use them."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise LockError(f"Cannot read lock file {path}: {exc}") from None
    packages = data.get("packages", [])
    if not isinstance(packages, list) or not all(
        isinstance(p, dict) and isinstance(p.get("name"), str) for p in packages
    ):
        raise LockError(f"Lock file {path} has no valid [[packages]] list")
    return packages


def _lock_layer_name(path: Path) -> str:
    """Layer a lock file belongs to: recorded in it by us, else ``pylock.<layer>.toml``."""
    try:
        recorded = tomllib.loads(path.read_text(encoding="utf-8"))["tool"]["kernelstacks"]["layer"]
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, KeyError, TypeError):
        recorded = None
    if isinstance(recorded, str):
        return recorded
    match = re.fullmatch(r"pylock\.(.+)\.toml", path.name)
    return match[1] if match else path.parent.name


# -- lower layers' pins -------------------------------------------------------------------------


@dataclass(frozen=True)
class LowerPin:
    """One package entry of a lower layer's lock."""

    name: str
    version: str
    marker: str | None
    layer: str
    path: Path


def read_lower_pins(paths: Iterable[Path]) -> list[LowerPin]:
    """Every package entry of the lower locks, in the given (C3, runtime last) order."""
    pins = []
    for path in paths:
        layer = _lock_layer_name(path)
        for entry in _pylock_packages(path):
            pins.append(
                LowerPin(
                    name=canonicalize_name(entry["name"]),
                    version=str(entry.get("version", "")),
                    marker=entry.get("marker"),
                    layer=layer,
                    path=path,
                )
            )
    return pins


def provider(lower: list[LowerPin], name: str, platform: str, xy: str) -> LowerPin | None:
    """The lower entry whose copy of ``name`` is imported on ``platform``.

    Lower layers are searched in the order they appear on ``sys.path`` (C3, runtime last), so
    when two sibling layers lock different versions the first one is the one that is used.
    """
    for pin in lower:
        if pin.name == name and applies(pin.marker, platform, xy):
            return pin
    return None


def constraints(lower: list[LowerPin], platforms: list[str], xy: str) -> list[str]:
    """``name==version`` constraints for every lower package, per platform where they differ."""
    result = []
    for name in sorted({pin.name for pin in lower}):
        by_version: dict[str, list[str]] = {}
        for platform in platforms:
            pin = provider(lower, name, platform, xy)
            if pin is not None and pin.version:
                by_version.setdefault(pin.version, []).append(platform)
        for version, where in by_version.items():
            if where == platforms:
                result.append(f"{name}=={version}")
            else:
                selector = " or ".join(f"({platform_marker(p)})" for p in where)
                result.append(f"{name}=={version} ; {selector}")
    return result


# -- the exported lock --------------------------------------------------------------------------


def drop_provided(
    doc: tomlkit.TOMLDocument, lower: list[LowerPin], platforms: list[str], xy: str
) -> dict[str, str]:
    """Remove packages the lower layers already install; return name -> lower version.

    A package provided by a lower layer on only some platforms stays, restricted by its marker
    to the platforms where this layer must install it.
    """
    packages = doc.get("packages", [])
    provided: dict[str, str] = {}
    for index in reversed(range(len(packages))):
        entry = packages[index]
        name = canonicalize_name(str(entry["name"]))
        marker = entry.get("marker")
        applicable = [p for p in platforms if applies(marker, p, xy)]
        providers = {p: provider(lower, name, p, xy) for p in applicable}
        needed = [p for p in applicable if providers[p] is None]
        found = [pin for pin in providers.values() if pin is not None]
        if found:
            provided[name] = found[0].version
        if not needed and applicable:
            del packages[index]
        elif found:
            selector = " or ".join(f"({platform_marker(p)})" for p in needed)
            entry["marker"] = f"({marker}) and ({selector})" if marker else selector
    return dict(sorted(provided.items()))


def annotate(
    doc: tomlkit.TOMLDocument, layer: str, provided: dict[str, str], lower: list[LowerPin]
) -> None:
    """Record the layer and what lower layers provide, under ``[tool.kernelstacks]``."""
    table = tomlkit.table()
    table["layer"] = layer
    if provided:
        by_name = tomlkit.table()
        for name, version in provided.items():
            pin = next(p for p in lower if p.name == name and p.version == version)
            item = tomlkit.inline_table()
            item.update({"version": version, "layer": pin.layer})
            by_name[name] = item
        table["provided-by-lower"] = by_name
    tool = doc.get("tool")
    if tool is None:
        tool = tomlkit.table()
        doc["tool"] = tool
    tool["kernelstacks"] = table


def locked_versions(doc: tomlkit.TOMLDocument) -> dict[str, str]:
    """Normalized name -> version of the packages left in the lock."""
    versions: dict[str, str] = {}
    for entry in doc.get("packages", []):
        versions.setdefault(canonicalize_name(str(entry["name"])), str(entry.get("version", "")))
    return versions

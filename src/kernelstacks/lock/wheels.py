"""Target platforms as marker environments and wheel tags: which entries and wheels a target uses.

A layer is locked for a CPython version on some of the six venvstacks platforms. Lock entries carry
PEP 508 markers, evaluated here for each target as venvstacks evaluates them (the platform's
``os_name``/``sys_platform``/``platform_system``/``platform_machine``, the runtime's
``python_version``/``python_full_version``, CPython; other marker variables are this machine's).
Wheels carry tags: the lock keeps every wheel uv lists (as venvstacks' locks do), and
:func:`check_wheels` makes sure each target can install every package it needs, within
``linux_target`` (glibc) and ``macosx_target`` when those are set. A package left without a
fitting wheel for a target is *stranded*: the caller warns about it (locks are wheel-only, so
building the layer on that platform would fail).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from packaging.markers import InvalidMarker, Marker
from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from kernelstacks._support.versions import PythonVersion

# venvstacks platform names -> the markers that select that platform.
PLATFORMS: dict[str, dict[str, str]] = {
    "win_amd64": {"sys_platform": "win32", "platform_machine": "AMD64"},
    "win_arm64": {"sys_platform": "win32", "platform_machine": "ARM64"},
    "linux_x86_64": {"sys_platform": "linux", "platform_machine": "x86_64"},
    "linux_aarch64": {"sys_platform": "linux", "platform_machine": "aarch64"},
    "macosx_arm64": {"sys_platform": "darwin", "platform_machine": "arm64"},
    "macosx_x86_64": {"sys_platform": "darwin", "platform_machine": "x86_64"},
}
_OS_FACTS = {
    "win32": {"os_name": "nt", "platform_system": "Windows"},
    "linux": {"os_name": "posix", "platform_system": "Linux"},
    "darwin": {"os_name": "posix", "platform_system": "Darwin"},
}
_LEGACY_MANYLINUX = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
_MAC_ARCHES = {
    "arm64": {"arm64", "universal2"},
    "x86_64": {"x86_64", "intel", "fat64", "fat32", "universal2", "universal"},
}

# -- markers ------------------------------------------------------------------------------------


def platform_marker(platform: str) -> str:
    """PEP 508 marker text that is true exactly on ``platform``."""
    facts = PLATFORMS[platform]
    return (
        f"sys_platform == '{facts['sys_platform']}' "
        f"and platform_machine == '{facts['platform_machine']}'"
    )


def marker_env(platform: str, py_version: str) -> dict[str, str]:
    """venvstacks' marker environment for CPython ``py_version`` (``X.Y[.Z]``) on ``platform``.

    Only these keys are set; :meth:`packaging.markers.Marker.evaluate` fills in the others from
    the running interpreter, exactly as it does for venvstacks.
    """
    facts = PLATFORMS[platform]
    xy = PythonVersion.parse(py_version).xy
    return {
        **facts,
        **_OS_FACTS[facts["sys_platform"]],
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "python_version": xy,
        "python_full_version": py_version if py_version.count(".") >= 2 else f"{xy}.0",
    }


def applies(marker: str | None, platform: str, py_version: str) -> bool:
    """Whether an entry's marker selects it on ``platform``; unreadable markers count."""
    if not marker:
        return True
    try:
        return Marker(marker).evaluate(marker_env(platform, py_version))
    except (InvalidMarker, ValueError, KeyError, TypeError):
        return True


# -- wheel tags ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stranded:
    """A locked package with no wheel for some of the target platforms."""

    name: str
    version: str | None
    platforms: list[str]


def _wheel_filename(wheel: Mapping[str, Any]) -> str:
    """A pylock wheel entry's file name, from ``name``, ``path`` or ``url``."""
    if wheel.get("name"):
        return str(wheel["name"])
    if wheel.get("path"):
        return Path(str(wheel["path"])).name
    return unquote(urlparse(str(wheel.get("url", ""))).path.rpartition("/")[2])


def _version_tuple(text: str | None) -> tuple[int, ...] | None:
    """``"2.28"`` -> ``(2, 28)``, ``"14"`` -> ``(14, 0)``; ``None`` stays ``None``.

    Padded to two parts so a target compares with the ``(major, minor)`` of a wheel tag as the
    version it means: ``macosx_target = "14"`` is 14.0 and admits ``macosx_14_0`` wheels.
    """
    if text is None:
        return None
    parts = tuple(int(part) for part in str(text).replace("_", ".").split(".") if part)
    return parts + (0,) * (2 - len(parts))


def _interpreter_pairs(py_version: str) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(interpreter, abi) pairs CPython ``X.Y`` accepts: on a binary platform, and on ``any``."""
    version = PythonVersion.parse(py_version).xy_tuple
    cp = f"cp{version[0]}{version[1]}"
    tags = [*cpython_tags(version, abis=[cp], platforms=["p"])]
    tags += compatible_tags(version, cp, platforms=["p"])
    binary = {(t.interpreter, t.abi) for t in tags if t.platform == "p"}
    anywhere = {(t.interpreter, t.abi) for t in tags if t.platform == "any"}
    return binary, anywhere


def _linux_platform_fits(tag_platform: str, arch: str, glibc: tuple[int, ...] | None) -> bool:
    """Whether a ``manylinux``/``linux`` wheel platform runs on glibc ``arch`` <= ``glibc``."""
    if tag_platform == f"linux_{arch}":
        return True
    match = re.fullmatch(r"manylinux_(\d+)_(\d+)_(\w+)", tag_platform)
    legacy = re.fullmatch(r"(manylinux1|manylinux2010|manylinux2014)_(\w+)", tag_platform)
    if match:
        needed, tag_arch = (int(match[1]), int(match[2])), match[3]
    elif legacy:
        needed, tag_arch = _LEGACY_MANYLINUX[legacy[1]], legacy[2]
    else:
        return False
    return tag_arch == arch and (glibc is None or needed <= glibc)


def _mac_platform_fits(tag_platform: str, arch: str, macos: tuple[int, ...] | None) -> bool:
    """Whether a ``macosx`` wheel platform runs on ``arch`` with macOS <= ``macos``."""
    match = re.fullmatch(r"macosx_(\d+)_(\d+)_(\w+)", tag_platform)
    if match is None or match[3] not in _MAC_ARCHES[arch]:
        return False
    return macos is None or (int(match[1]), int(match[2])) <= macos


@dataclass(frozen=True)
class WheelTargets:
    """What a layer's wheels must install on: CPython ``py_version`` (``X.Y[.Z]``) on
    ``platforms``, within the glibc and macOS limits (``"2.28"``, ``"14"``) when set."""

    platforms: list[str]
    py_version: str
    linux_target: str | None = None
    macosx_target: str | None = None

    def platform_fits(self, tag_platform: str, platform: str) -> bool:
        """Whether a wheel's platform tag installs on the venvstacks ``platform``."""
        if platform.startswith("win_"):
            return tag_platform == platform
        if platform.startswith("linux_"):
            arch = platform.removeprefix("linux_")
            return _linux_platform_fits(tag_platform, arch, _version_tuple(self.linux_target))
        arch = platform.removeprefix("macosx_")
        return _mac_platform_fits(tag_platform, arch, _version_tuple(self.macosx_target))


def _wheel_fits(
    tags: frozenset[Tag], platform: str, targets: WheelTargets, pairs: tuple[set, set]
) -> bool:
    """Whether any of a wheel's tags installs on CPython ``X.Y`` on ``platform``."""
    binary, anywhere = pairs
    for tag in tags:
        if tag.platform == "any":
            if (tag.interpreter, tag.abi) in anywhere:
                return True
        elif (tag.interpreter, tag.abi) in binary and targets.platform_fits(tag.platform, platform):
            return True
    return False


def check_wheels(packages: list[dict[str, Any]], targets: WheelTargets) -> list[Stranded]:
    """The packages some target needs but has no wheel to install (empty when all have one).

    Entries a target does not need (their marker is false there, e.g. packages a lower layer
    provides) are not judged for that target. Nothing is changed: venvstacks' locks list every
    wheel uv found, and so do ours.
    """
    pairs = _interpreter_pairs(targets.py_version)
    stranded = []
    for entry in packages:
        marker = entry.get("marker")
        applicable = [p for p in targets.platforms if applies(marker, p, targets.py_version)]
        fits = dict.fromkeys(applicable, False)
        for wheel in entry.get("wheels", ()):
            try:
                tags = parse_wheel_filename(_wheel_filename(wheel))[3]
            except InvalidWheelFilename:
                continue
            for platform in applicable:
                fits[platform] = fits[platform] or _wheel_fits(tags, platform, targets, pairs)
        missing = [p for p, ok in fits.items() if not ok]
        if missing:
            version = entry.get("version")
            name = str(entry["name"])
            stranded.append(Stranded(name, None if version is None else str(version), missing))
    return stranded

"""Lock one layer of a stack into a PEP 751 ``pylock`` file, and install such a lock.

This module knows nothing about the stack file format: the caller hands it a :class:`LockRequest`
(requirements, runtime ``X.Y``, target platforms, the lower layers' lock files, the stack's
``[tool.uv]`` table) and gets a lock file plus a :class:`LockResult`.

How a layer is resolved, and why:

* ``uv lock`` on a throwaway project, then ``uv export --format pylock.toml``.  ``uv pip compile
  --universal`` cannot restrict a resolution to the stack's platforms or to one Python ``X.Y``
  (``--python-version`` is only a lower bound there, so it resolves for every later Python too,
  and ``environments`` is rejected outside a project).  A project can say exactly what we mean:
  ``environments`` (resolve only for these platforms on ``X.Y``) and ``required-environments``
  (fail unless every target platform has a wheel or an sdist).
* Every lower layer's pins become ``constraint-dependencies`` (``name==version``, with a platform
  marker where the lower layers differ per platform), so a package shared with a lower layer
  resolves to exactly the version that layer installs.  Those packages are then removed from this
  layer's lock, so they are never installed twice; the lock records them under
  ``[tool.kernelstacks.provided-by-lower]``.
* The stack's ``[tool.uv]`` settings go into a generated ``uv.toml`` passed with
  ``--config-file`` (``uv_env`` sets ``UV_NO_CONFIG``, so settings in the generated
  ``pyproject.toml`` would be ignored); only the keys uv accepts in projects alone (``sources``,
  ``conflicts``...) are written into the generated ``pyproject.toml``.
* Wheels that fit none of the target platforms (or need a newer glibc / macOS than
  ``linux_target`` / ``macosx_target``) are dropped from the lock, so it lists exactly what the
  targets can install; a package left with nothing installable on a target is a :class:`LockError`.
* The output has no header or timestamps (``--no-header``), so locking the same inputs against
  the same index state (``exclude-newer``) gives byte-identical files.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import tomlkit
from packaging.markers import InvalidMarker, Marker
from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

from kernelstacks._support.errors import KernelstacksError
from kernelstacks._support.uv import run_uv, uv_output

__all__ = [
    "PLATFORMS",
    "LockError",
    "LockRequest",
    "LockResult",
    "lock_layer",
    "read_pylock",
]


class LockError(KernelstacksError):
    """A layer could not be locked; the message names the layer and what uv objected to."""


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
# `[tool.uv]` keys uv refuses in a uv.toml: they belong to the generated project.
_PROJECT_ONLY_KEYS = frozenset(
    {"sources", "conflicts", "dev-dependencies", "default-groups", "build-backend"}
)
# Keys this module derives from the request; a stack's own values would contradict them.
_OWNED_KEYS = frozenset(
    {"environments", "required-environments", "workspace", "package", "managed"}
)
_PROJECT_NAME = "kernelstacks-layer-lock"
# What uv says when a requirement does not exist, the settings are bad, or no Python fits.
_NOT_FOUND = re.compile(r"Because ([\w.\-\[\]]+) was not found in the package registry")
_BAD_CONFIG = re.compile(r"Failed to parse.*uv\.toml")
_NO_INTERPRETER = re.compile(
    r"No interpreter found|Failed to inspect Python interpreter|interpreter.*incompatible"
)


@dataclass
class LockRequest:
    """Everything needed to lock one layer (see the module docstring for how it is used)."""

    layer: str
    requirements: list[str]
    python_version: str
    platforms: list[str]
    lower_locks: list[Path]
    uv_settings: dict[str, Any] = field(default_factory=dict)
    linux_target: str | None = None
    macosx_target: str | None = None
    # Interpreter uv runs while locking (it builds sdists' metadata with it).  ``uv lock`` needs
    # one at least as new as ``python_version``: default is this process's interpreter when new
    # enough, else whatever uv discovers.  Pass the runtime layer's python when it is built.
    python: Path | None = None


@dataclass
class LockResult:
    """What ended up in a layer's lock, and what its lower layers provide instead."""

    packages: dict[str, str]
    provided_by_lower: dict[str, str]


@dataclass(frozen=True)
class _LowerPin:
    """One package entry of a lower layer's lock."""

    name: str
    version: str
    marker: str | None
    layer: str
    path: Path


# --------------------------------------------------------------------------------------------
# Public API


def lock_layer(req: LockRequest, output: Path) -> LockResult:
    """Resolve ``req`` with uv and write its pylock file to ``output`` atomically."""
    xy = _python_xy(req)
    platforms = _check_platforms(req)
    _check_targets(req)
    lower = _read_lower_pins(req.lower_locks)
    with tempfile.TemporaryDirectory(prefix="kernelstacks-lock-") as tmp:
        project = Path(tmp)
        config = _write_uv_config(project, req.uv_settings)
        pyproject = _project_document(req, xy, platforms, _constraints(lower, platforms, xy))
        (project / "pyproject.toml").write_text(tomlkit.dumps(pyproject), encoding="utf-8")
        _run_lock(req, project, config, xy, lower)
        text = _run_export(req, project, config)
    doc = tomlkit.parse(text)
    provided = _drop_provided(doc, lower, platforms, xy)
    _filter_wheels(req, doc, platforms, xy)
    _annotate(doc, req.layer, provided, lower)
    _write_atomic(output, tomlkit.dumps(doc))
    return LockResult(packages=_versions(doc), provided_by_lower=provided)


def read_pylock(path: Path) -> dict[str, str]:
    """Map normalized package name -> version for every package a pylock file lists.

    A name locked to different versions on different platforms reports its first entry.
    """
    versions: dict[str, str] = {}
    for entry in _pylock_packages(path):
        versions.setdefault(canonicalize_name(entry["name"]), str(entry.get("version", "")))
    return versions


# --------------------------------------------------------------------------------------------
# Validating the request


def _python_xy(req: LockRequest) -> str:
    """``X.Y`` of the runtime; a full ``X.Y.Z`` is accepted and cut down."""
    match = re.fullmatch(r"(\d+)\.(\d+)(?:\.\d+)?", req.python_version.strip())
    if match is None:
        raise LockError(
            f"Cannot lock layer '{req.layer}': python_version {req.python_version!r} is not X.Y"
        )
    return f"{match[1]}.{match[2]}"


def _check_platforms(req: LockRequest) -> list[str]:
    """Known target platforms in a canonical order (the order must not change the lock)."""
    unknown = [p for p in req.platforms if p not in PLATFORMS]
    if unknown or not req.platforms:
        raise LockError(
            f"Cannot lock layer '{req.layer}': platforms {req.platforms!r} must be a non-empty "
            f"list of {', '.join(PLATFORMS)}"
        )
    return [p for p in PLATFORMS if p in req.platforms]


def _check_targets(req: LockRequest) -> None:
    """``linux_target`` (glibc) and ``macosx_target`` must be dotted version numbers."""
    for key in ("linux_target", "macosx_target"):
        value = getattr(req, key)
        if value is not None and not re.fullmatch(r"\d+(\.\d+)*", str(value)):
            raise LockError(
                f"Cannot lock layer '{req.layer}': {key} {value!r} is not a version like '2.28'"
            )


# --------------------------------------------------------------------------------------------
# Markers and platforms


def _platform_marker(platform: str) -> str:
    """PEP 508 marker text that is true exactly on ``platform``."""
    facts = PLATFORMS[platform]
    return (
        f"sys_platform == '{facts['sys_platform']}' "
        f"and platform_machine == '{facts['platform_machine']}'"
    )


def _marker_env(platform: str, xy: str) -> dict[str, str]:
    """Marker environment of a CPython ``xy`` on ``platform`` (patch level unknown: ``.0``)."""
    facts = PLATFORMS[platform]
    return {
        **facts,
        **_OS_FACTS[facts["sys_platform"]],
        "python_version": xy,
        "python_full_version": f"{xy}.0",
        "implementation_name": "cpython",
        "implementation_version": f"{xy}.0",
        "platform_python_implementation": "CPython",
        "platform_release": "",
        "platform_version": "",
        "extra": "",
    }


def _applies(marker: str | None, platform: str, xy: str) -> bool:
    """Whether a lock entry's marker selects it on ``platform``; unreadable markers count."""
    if not marker:
        return True
    try:
        return Marker(marker).evaluate(_marker_env(platform, xy))  # type: ignore[arg-type]
    except (InvalidMarker, ValueError, KeyError, TypeError):
        return True


# --------------------------------------------------------------------------------------------
# Lower layers


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


def _read_lower_pins(paths: Iterable[Path]) -> list[_LowerPin]:
    """Every package entry of the lower locks, in the given (C3, runtime last) order."""
    pins = []
    for path in paths:
        layer = _lock_layer_name(path)
        for entry in _pylock_packages(path):
            pins.append(
                _LowerPin(
                    name=canonicalize_name(entry["name"]),
                    version=str(entry.get("version", "")),
                    marker=entry.get("marker"),
                    layer=layer,
                    path=path,
                )
            )
    return pins


def _provider(lower: list[_LowerPin], name: str, platform: str, xy: str) -> _LowerPin | None:
    """The lower entry whose copy of ``name`` is imported on ``platform``.

    Lower layers are searched in the order they appear on ``sys.path`` (C3, runtime last), so
    when two sibling layers lock different versions the first one is the one that is used.
    """
    for pin in lower:
        if pin.name == name and _applies(pin.marker, platform, xy):
            return pin
    return None


def _constraints(lower: list[_LowerPin], platforms: list[str], xy: str) -> list[str]:
    """``name==version`` constraints for every lower package, per platform where they differ."""
    constraints = []
    for name in sorted({pin.name for pin in lower}):
        by_version: dict[str, list[str]] = {}
        for platform in platforms:
            pin = _provider(lower, name, platform, xy)
            if pin is not None and pin.version:
                by_version.setdefault(pin.version, []).append(platform)
        for version, where in by_version.items():
            if where == platforms:
                constraints.append(f"{name}=={version}")
            else:
                selector = " or ".join(f"({_platform_marker(p)})" for p in where)
                constraints.append(f"{name}=={version} ; {selector}")
    return constraints


# --------------------------------------------------------------------------------------------
# The generated project and uv configuration


def _plain(value: Any) -> Any:
    """Settings as plain TOML-ready values: tomlkit items unwrapped, datetimes as uv strings."""
    if hasattr(value, "unwrap"):
        value = value.unwrap()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date | time):
        return value.isoformat()
    return value


def _write_uv_config(project: Path, settings: Mapping[str, Any]) -> Path:
    """Write the stack's uv settings (minus project-only keys) as a ``uv.toml`` for uv."""
    plain = _plain(settings or {})
    config = {
        k: v
        for k, v in plain.items()
        if k not in _PROJECT_ONLY_KEYS | _OWNED_KEYS and k != "constraint-dependencies"
    }
    path = project / "uv.toml"
    path.write_text(tomlkit.dumps(config), encoding="utf-8")
    return path


def _project_document(
    req: LockRequest, xy: str, platforms: list[str], constraints: list[str]
) -> dict[str, Any]:
    """The throwaway project whose lock is this layer's lock.

    ``requires-python`` is only a lower bound (``uv lock`` insists on an interpreter inside it,
    and the upper bound is carried by ``environments``, which also say CPython: runtimes are
    CPython, so PyPy-only dependencies must not enter the lock).  The empty ``workspace`` table
    keeps uv from adopting the project into a workspace found above the temporary directory.
    """
    plain = _plain(req.uv_settings or {})
    environments = [
        f"python_version == '{xy}' and implementation_name == 'cpython' and {_platform_marker(p)}"
        for p in platforms
    ]
    tool_uv: dict[str, Any] = {k: v for k, v in plain.items() if k in _PROJECT_ONLY_KEYS}
    tool_uv["environments"] = environments
    tool_uv["required-environments"] = environments
    user_constraints = [str(c) for c in plain.get("constraint-dependencies", [])]
    if user_constraints or constraints:
        tool_uv["constraint-dependencies"] = [*user_constraints, *constraints]
    tool_uv["workspace"] = {"members": []}
    return {
        "project": {
            "name": _PROJECT_NAME,
            "version": "0",
            "requires-python": f">={xy}",
            "dependencies": list(req.requirements),
        },
        "tool": {"uv": tool_uv},
    }


def _lock_python(req: LockRequest, xy: str) -> list[str]:
    """``--python`` arguments for ``uv lock`` (see :attr:`LockRequest.python`)."""
    if req.python is not None:
        return ["--python", os.fspath(req.python)]
    major, minor = (int(part) for part in xy.split("."))
    if sys.version_info[:2] >= (major, minor):
        return ["--python", sys.executable]
    return []


# --------------------------------------------------------------------------------------------
# Running uv


def _run_lock(
    req: LockRequest, project: Path, config: Path, xy: str, lower: list[_LowerPin]
) -> None:
    """Resolve the generated project; turn uv's refusal into a :class:`LockError`."""
    args = ["lock", "--directory", project, "--config-file", config, *_lock_python(req, xy)]
    proc = run_uv([*args, "--no-progress", "--color", "never"], check=False)
    if proc.returncode != 0:
        raise LockError(_explain_failure(req, xy, proc.stderr, lower))


def _run_export(req: LockRequest, project: Path, config: Path) -> str:
    """The resolved project as pylock text, without the project itself or a header."""
    args = ["export", "--directory", project, "--config-file", config, "--frozen"]
    args += ["--format", "pylock.toml", "--no-emit-project", "--no-header", "--no-progress"]
    proc = run_uv([*args, "--color", "never", "--quiet"], check=False)
    if proc.returncode != 0:
        raise LockError(
            f"Cannot lock layer '{req.layer}': exporting the resolution failed.\n"
            f"uv says:\n{uv_output(proc.stderr)}"
        )
    return proc.stdout


def _mentions(text: str, name: str) -> bool:
    """Whether uv's message names package ``name`` (as a whole word, any spelling)."""
    pattern = re.escape(name).replace(r"\-", "[-_.]")
    return re.search(rf"(?<![\w.-]){pattern}(?![\w-])", text, re.IGNORECASE) is not None


def _explain_failure(req: LockRequest, xy: str, stderr: str, lower: list[_LowerPin]) -> str:
    """A message naming the layer, the requirement or lower-layer pin at fault, and uv's words."""
    details = [
        f"requirement '{name}' was not found on the package index"
        for name in dict.fromkeys(_NOT_FOUND.findall(stderr))
    ]
    if not details:
        details = [
            f"'{pin.name}' is pinned to {pin.version} by lower layer '{pin.layer}' "
            f"({pin.path}) and this layer's requirements need a different version"
            for pin in _conflicting_pins(stderr, lower)
        ]
    if _BAD_CONFIG.search(stderr):
        details.append("uv rejected the stack's [tool.uv] settings")
    if _NO_INTERPRETER.search(stderr):
        details.append(
            f"uv needs a Python >= {xy} to lock with: pass LockRequest.python "
            "(e.g. the runtime layer's interpreter)"
        )
    summary = "; ".join(details) or "uv could not resolve its requirements"
    return (
        f"Cannot lock layer '{req.layer}': {summary}.\n"
        f"Requirements: {', '.join(req.requirements) or '(none)'}\n"
        f"uv says:\n{uv_output(stderr)}"
    )


def _conflicting_pins(stderr: str, lower: list[_LowerPin]) -> list[_LowerPin]:
    """Lower-layer pins that uv's explanation names (first lock per package)."""
    seen: dict[str, _LowerPin] = {}
    for pin in lower:
        if pin.name not in seen and _mentions(stderr, pin.name):
            seen[pin.name] = pin
    return list(seen.values())


# --------------------------------------------------------------------------------------------
# Post-processing the exported lock


def _drop_provided(
    doc: tomlkit.TOMLDocument, lower: list[_LowerPin], platforms: list[str], xy: str
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
        applicable = [p for p in platforms if _applies(marker, p, xy)]
        providers = {p: _provider(lower, name, p, xy) for p in applicable}
        needed = [p for p in applicable if providers[p] is None]
        found = [pin for pin in providers.values() if pin is not None]
        if found:
            provided[name] = found[0].version
        if not needed and applicable:
            del packages[index]
        elif found:
            selector = " or ".join(f"({_platform_marker(p)})" for p in needed)
            entry["marker"] = f"({marker}) and ({selector})" if marker else selector
    return dict(sorted(provided.items()))


def _wheel_filename(wheel: Mapping[str, Any]) -> str:
    """A pylock wheel entry's file name, from ``name``, ``path`` or ``url``."""
    if wheel.get("name"):
        return str(wheel["name"])
    if wheel.get("path"):
        return Path(str(wheel["path"])).name
    return unquote(urlparse(str(wheel.get("url", ""))).path.rpartition("/")[2])


def _version_tuple(text: str | None) -> tuple[int, ...] | None:
    """``"2.28"`` -> ``(2, 28)``; ``None`` stays ``None``."""
    if text is None:
        return None
    return tuple(int(part) for part in str(text).replace("_", ".").split(".") if part)


def _interpreter_pairs(xy: str) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(interpreter, abi) pairs CPython ``xy`` accepts: on a binary platform, and on ``any``."""
    version = tuple(int(part) for part in xy.split("."))
    cp = f"cp{version[0]}{version[1]}"
    tags = [*cpython_tags(version, abis=[cp], platforms=["p"])]
    tags += compatible_tags(version, cp, platforms=["p"])
    binary = {(t.interpreter, t.abi) for t in tags if t.platform == "p"}
    anywhere = {(t.interpreter, t.abi) for t in tags if t.platform == "any"}
    return binary, anywhere


_LEGACY_MANYLINUX = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
_MAC_ARCHES = {
    "arm64": {"arm64", "universal2"},
    "x86_64": {"x86_64", "intel", "fat64", "fat32", "universal2", "universal"},
}


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


def _platform_fits(tag_platform: str, platform: str, req: LockRequest) -> bool:
    """Whether a wheel's platform tag installs on the venvstacks ``platform``."""
    if platform.startswith("win_"):
        return tag_platform == platform
    if platform.startswith("linux_"):
        arch = platform.removeprefix("linux_")
        return _linux_platform_fits(tag_platform, arch, _version_tuple(req.linux_target))
    arch = platform.removeprefix("macosx_")
    return _mac_platform_fits(tag_platform, arch, _version_tuple(req.macosx_target))


def _wheel_fits(
    tags: frozenset[Tag], platform: str, req: LockRequest, pairs: tuple[set, set]
) -> bool:
    """Whether any of a wheel's tags installs on CPython ``X.Y`` on ``platform``."""
    binary, anywhere = pairs
    for tag in tags:
        if tag.platform == "any":
            if (tag.interpreter, tag.abi) in anywhere:
                return True
        elif (tag.interpreter, tag.abi) in binary and _platform_fits(tag.platform, platform, req):
            return True
    return False


def _filter_wheels(
    req: LockRequest, doc: tomlkit.TOMLDocument, platforms: list[str], xy: str
) -> None:
    """Keep only wheels some target can install; fail if a target is left with nothing."""
    pairs = _interpreter_pairs(xy)
    for entry in doc.get("packages", []):
        wheels = entry.get("wheels")
        applicable = [p for p in platforms if _applies(entry.get("marker"), p, xy)]
        if wheels is None or not applicable:  # nothing to judge by: leave the entry to uv
            continue
        fits: dict[str, bool] = dict.fromkeys(applicable, False)
        for index in reversed(range(len(wheels))):
            try:
                tags = parse_wheel_filename(_wheel_filename(wheels[index]))[3]
            except InvalidWheelFilename:
                continue
            good = [p for p in applicable if _wheel_fits(tags, p, req, pairs)]
            for platform in good:
                fits[platform] = True
            if not good:
                del wheels[index]
        stranded = [p for p, ok in fits.items() if not ok]
        if stranded and "sdist" not in entry:
            raise LockError(_stranded_message(req, entry, stranded))
        if not wheels:
            del entry["wheels"]


def _stranded_message(req: LockRequest, entry: Mapping[str, Any], stranded: list[str]) -> str:
    """Explain that a locked package has no wheel (and no sdist) for some target platforms."""
    targets = []
    if req.linux_target:
        targets.append(f"linux_target {req.linux_target}")
    if req.macosx_target:
        targets.append(f"macosx_target {req.macosx_target}")
    limits = f" within {' and '.join(targets)}" if targets else ""
    return (
        f"Cannot lock layer '{req.layer}': {entry['name']}=={entry.get('version')} has no wheel "
        f"for Python {_python_xy(req)} on {', '.join(stranded)}{limits}, and no sdist."
    )


def _annotate(
    doc: tomlkit.TOMLDocument, layer: str, provided: dict[str, str], lower: list[_LowerPin]
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


def _versions(doc: tomlkit.TOMLDocument) -> dict[str, str]:
    """Normalized name -> version of the packages left in the lock."""
    versions: dict[str, str] = {}
    for entry in doc.get("packages", []):
        versions.setdefault(canonicalize_name(str(entry["name"])), str(entry.get("version", "")))
    return versions


def _write_atomic(path: Path, text: str) -> None:
    """Write ``text`` so readers see the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

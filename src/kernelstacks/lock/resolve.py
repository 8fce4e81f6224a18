"""Lock one layer of a stack into a PEP 751 ``pylock`` file, as venvstacks 0.8 locks it.

This module knows nothing about the stack file format: the caller hands it a :class:`LockRequest`
(requirements, runtime version, target platforms, the lower layers' locks, the layer's uv settings)
and gets a lock file plus a :class:`LockResult`.

How a layer is resolved, and why:

* ``uv lock`` on a throwaway project, then ``uv export --format pylock.toml``, with venvstacks'
  project: ``requires-python = "==X.Y.*"`` (so ``uv lock`` needs an X.Y interpreter, see
  :attr:`LockRequest.python`), the declared requirements sorted, and every lower layer's pins as
  ``constraint-dependencies`` in venvstacks' order (:func:`kernelstacks.lock.pylock.lower_pins`),
  so a package shared with a lower layer resolves to exactly the version that layer installs.
  uv resolves for every platform at once, as for venvstacks; the export is then amended for the
  layer's platforms (:mod:`kernelstacks.lock.amend`), so the same inputs give venvstacks' file.
* The layer's uv settings (the stack's ``[tool.uv]`` with the layer's index settings applied, from
  :func:`kernelstacks.lock.indexes.layer_uv_settings`) go into a generated ``uv.toml`` passed with
  ``--config-file`` (``uv_env`` sets ``UV_NO_CONFIG``); keys uv accepts in projects only
  (``sources``, ``environments``...) go into the generated ``pyproject.toml``. ``no-build`` is
  always on, as venvstacks sets it: layers install wheels only.
* Beyond venvstacks: a package a target platform needs but has no wheel for there (within
  ``linux_target`` / ``macosx_target``) is named in :attr:`LockResult.warnings`, instead of being
  found by a failed build on that platform later (:func:`kernelstacks.lock.wheels.check_wheels`).
  It is a warning, not an error: the lock is venvstacks' lock all the same, and a stack that
  never builds for that platform (the six platforms are the default) is not at fault.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import tomlkit
from packaging.utils import canonicalize_name

from kernelstacks._support import atomic
from kernelstacks._support.uv import run_uv, uv_output
from kernelstacks._support.versions import PythonVersion
from kernelstacks.lock.amend import Targets, amend, render
from kernelstacks.lock.errors import LockError
from kernelstacks.lock.explain import (
    explain_failure,
    failed_platforms,
    other_environment_failed,
)
from kernelstacks.lock.fingerprints import declared_requirements, requirement_lines
from kernelstacks.lock.pylock import (
    LowerLock,
    Pin,
    entry_from,
    lower_pins,
    pin_conflicts,
    read_pylock,
)
from kernelstacks.lock.wheels import PLATFORMS, WheelTargets, check_wheels

__all__ = [
    "PLATFORMS",
    "LockError",
    "LockRequest",
    "LockResult",
    "LowerLock",
    "lock_layer",
    "read_pylock",
]

# `[tool.uv]` keys uv refuses in a uv.toml: they belong to the generated project.
_PROJECT_ONLY_KEYS = frozenset(
    {
        "sources",
        "conflicts",
        "dev-dependencies",
        "default-groups",
        "build-backend",
        "environments",
        "required-environments",
    }
)
# Keys written to both: uv resolves with the uv.toml's indexes, but checks that every index a
# project source names is declared in the project itself.
_BOTH_KEYS = frozenset({"index"})
# Keys this module derives from the request; a stack's own values would contradict them.
_OWNED_KEYS = frozenset({"workspace", "package", "managed", "no-build"})
_PROJECT_NAME = "kernelstacks-layer-lock"


@dataclass
class LockRequest:
    """Everything needed to lock one layer (see the module docstring for how it is used).

    ``python_version`` is the runtime's version as the stack file gives it (``X.Y`` or
    ``X.Y.Z``); ``lower_locks`` are in venvstacks' order: the runtime's first, then the
    frameworks' in ``sys.path`` order.
    """

    layer: str
    requirements: list[str]
    python_version: str
    platforms: list[str]
    lower_locks: list[LowerLock]
    uv_settings: dict[str, Any] = field(default_factory=dict)
    linux_target: str | None = None
    macosx_target: str | None = None
    # Interpreter uv runs while locking: ``uv lock`` insists on one of the runtime's X.Y.
    # Default: this process's interpreter when it is X.Y, else whatever uv discovers.
    python: Path | None = None


@dataclass
class LockResult:
    """What the layer installs, and what its lower layers provide instead (name -> version)."""

    packages: dict[str, str]
    provided_by_lower: dict[str, str]
    providers: dict[str, str] = field(default_factory=dict)  # name -> lower layer's build name
    warnings: list[str] = field(default_factory=list)  # target platforms that cannot install it


# --------------------------------------------------------------------------------------------
# Public API


def lock_layer(req: LockRequest, output: Path, *, lock_dir: Path | None = None) -> LockResult:
    """Resolve ``req`` with uv and write its pylock file to ``output`` atomically.

    ``lock_dir`` is the folder the lock will live in (default: ``output``'s): local wheel paths
    are written relative to it.
    """
    xy = _python_xy(req)
    platforms = _check_platforms(req)
    _check_targets(req)
    _check_lower_agree(req)
    pins = lower_pins(req.lower_locks)
    with tempfile.TemporaryDirectory(prefix="kernelstacks-lock-") as tmp:
        project = Path(tmp)
        config = _write_uv_config(project, req.uv_settings)
        pyproject = _project_document(req, xy, pins)
        (project / "pyproject.toml").write_text(tomlkit.dumps(pyproject), encoding="utf-8")
        narrowed = _run_lock(req, project, config, xy, pins, pyproject)
        export = _run_export(req, project, config)
    targets = Targets(req.layer, platforms, req.python_version)
    data = amend(export, pins, targets, Path(lock_dir or Path(output).parent).absolute())
    atomic.write_text(output, render(data, req.layer))
    result = _result(data, pins, req.layer)
    result.warnings = wheel_warnings(req, data.get("packages", []), platforms)
    if narrowed:
        result.warnings.insert(
            0,
            f"layer '{req.layer}': resolved for its platforms only ({', '.join(platforms)}): "
            f"uv cannot resolve its requirements for {', '.join(narrowed)}, which the layer "
            "does not build for (venvstacks, which resolves for every platform, cannot lock it)",
        )
    return result


# --------------------------------------------------------------------------------------------
# Validating the request


def _python_xy(req: LockRequest) -> str:
    """``X.Y`` of the runtime; a full ``X.Y.Z`` is accepted and cut down."""
    try:
        return PythonVersion.parse(req.python_version).xy
    except ValueError:
        raise LockError(
            f"Cannot lock layer '{req.layer}': python_version {req.python_version!r} is not X.Y"
        ) from None


def _check_platforms(req: LockRequest) -> list[str]:
    """Known target platforms, in the order given (venvstacks' order, which markers follow)."""
    unknown = [p for p in req.platforms if p not in PLATFORMS]
    if unknown or not req.platforms:
        raise LockError(
            f"Cannot lock layer '{req.layer}': platforms {req.platforms!r} must be a non-empty "
            f"list of {', '.join(PLATFORMS)}"
        )
    return list(dict.fromkeys(req.platforms))


def _check_targets(req: LockRequest) -> None:
    """``linux_target`` (glibc) and ``macosx_target`` must be dotted version numbers."""
    for key in ("linux_target", "macosx_target"):
        value = getattr(req, key)
        if value is not None and not re.fullmatch(r"\d+(\.\d+)*", str(value)):
            raise LockError(
                f"Cannot lock layer '{req.layer}': {key} {value!r} is not a version like '2.28'"
            )


# --------------------------------------------------------------------------------------------
# The generated project and uv configuration


def _check_lower_agree(req: LockRequest) -> None:
    """Refuse to lock on lower layers that install one package in different versions."""
    conflicts = pin_conflicts(req.lower_locks)
    if not conflicts:
        return
    lines = []
    for kept, other in conflicts:
        name = canonicalize_name(kept.name)
        on = f" (on {kept.entry.marker})" if kept.entry.marker else ""
        lines.append(
            f"  '{name}'{on}: '{kept.layer}' pins {name}=={kept.entry.version} ({kept.path}) "
            f"and '{other.layer}' pins {name}=={other.entry.version} ({other.path}); "
            f"'{req.layer}' would import {kept.entry.version} from '{kept.layer}' (first in "
            f"sys.path), so '{other.layer}' would run with a version it was not locked with"
        )
    kept, other = conflicts[0]
    name = canonicalize_name(kept.name)
    raise LockError(
        f"Cannot lock layer '{req.layer}': its lower layers pin different versions of the "
        f"same package{'s' if len(conflicts) > 1 else ''}:\n" + "\n".join(lines) + "\n"
        f'Make them agree, e.g. add "{name}=={kept.entry.version}" to the requirements of '
        f"'{other.layer}' (or \"{name}=={other.entry.version}\" to those of '{kept.layer}') "
        "and lock again, or move the package into a layer both build on."
    )


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
    """Write the layer's uv settings (minus project-only keys) as a ``uv.toml`` for uv."""
    plain = _plain(settings or {})
    config = {
        k: v
        for k, v in plain.items()
        if k not in _PROJECT_ONLY_KEYS | _OWNED_KEYS and k != "constraint-dependencies"
    }
    config["no-build"] = True
    path = project / "uv.toml"
    path.write_text(tomlkit.dumps(config), encoding="utf-8")
    return path


def _project_document(req: LockRequest, xy: str, pins: list[Pin]) -> dict[str, Any]:
    """The throwaway project whose lock is this layer's lock (venvstacks' project, see above).

    The empty ``workspace`` table keeps uv from adopting the project into a workspace found above
    the temporary directory.
    """
    plain = _plain(req.uv_settings or {})
    tool_uv: dict[str, Any] = {
        k: v for k, v in plain.items() if k in _PROJECT_ONLY_KEYS | _BOTH_KEYS
    }
    user_constraints = [str(c) for c in plain.get("constraint-dependencies", [])]
    constraints = [pin.entry.requirement for pin in pins]
    if user_constraints or constraints:
        tool_uv["constraint-dependencies"] = [*user_constraints, *constraints]
    tool_uv["workspace"] = {"members": []}
    return {
        "project": {
            "name": _PROJECT_NAME,
            "version": "0",
            "dependencies": requirement_lines(declared_requirements(req.requirements)),
            "requires-python": f"=={xy}.*",
        },
        "tool": {"uv": tool_uv},
    }


def _lock_python(req: LockRequest, xy: str) -> list[str]:
    """``--python`` arguments for ``uv lock`` (see :attr:`LockRequest.python`)."""
    if req.python is not None:
        return ["--python", os.fspath(req.python)]
    if sys.version_info[:2] == PythonVersion.parse(xy).xy_tuple:
        return ["--python", sys.executable]
    return []


# --------------------------------------------------------------------------------------------
# Running uv


def _run_lock(
    req: LockRequest,
    project: Path,
    config: Path,
    xy: str,
    pins: list[Pin],
    pyproject: dict[str, Any],
) -> list[str]:
    """Resolve the generated project; turn uv's refusal into a :class:`LockError`.

    uv resolves for every platform at once, as for venvstacks. When that fails only on
    platforms the layer does not build for, the layer is resolved again for its own platforms
    (``tool.uv.environments``): this is what a layer's ``platforms`` means, and venvstacks could
    not lock such a layer at all, so no lock it would write differs. Returns the platforms that
    failed in that case (empty when the first resolution succeeded).
    """
    args: list[str | os.PathLike[str]] = ["lock", "--directory", project, "--config-file", config]
    args += [*_lock_python(req, xy), "--no-progress", "--color", "never"]
    proc = run_uv(args, check=False)
    failed = _only_other_platforms_failed(req, xy, proc.stderr) if proc.returncode else []
    if failed:
        tool_uv = pyproject["tool"]["uv"]
        tool_uv["environments"] = [_environment_marker(p) for p in req.platforms]
        (project / "pyproject.toml").write_text(tomlkit.dumps(pyproject), encoding="utf-8")
        proc = run_uv(args, check=False)
    if proc.returncode != 0:
        raise LockError(
            explain_failure(req.layer, req.requirements, xy, proc.stderr, pins, req.platforms)
        )
    return failed


def _only_other_platforms_failed(req: LockRequest, xy: str, stderr: str) -> list[str]:
    """Platforms uv failed on, when none of them is one the layer builds for (else empty)."""
    if "environments" in (req.uv_settings or {}) or not other_environment_failed(stderr):
        return []
    failed = failed_platforms(stderr, xy)
    return [] if set(failed) & set(req.platforms) else failed


def _environment_marker(platform: str) -> str:
    """A ``tool.uv.environments`` entry selecting one target platform."""
    facts = PLATFORMS[platform]
    return (
        f"sys_platform == '{facts['sys_platform']}' and "
        f"platform_machine == '{facts['platform_machine']}'"
    )


def _run_export(req: LockRequest, project: Path, config: Path) -> str:
    """The resolved project as pylock text, without the project itself or a header."""
    args: list[str | os.PathLike[str]] = ["export", "--directory", project, "--config-file", config]
    args += ["--frozen", "--format", "pylock.toml", "--no-emit-project", "--no-header"]
    args += ["--no-annotate", "--no-progress", "--color", "never", "--quiet"]
    proc = run_uv(args, check=False)
    if proc.returncode != 0:
        raise LockError(
            f"Cannot lock layer '{req.layer}': exporting the resolution failed.\n"
            f"uv says:\n{uv_output(proc.stderr)}"
        )
    return proc.stdout


# --------------------------------------------------------------------------------------------
# Checking and summarising the amended lock


def wheel_warnings(
    req: LockRequest, packages: list[dict[str, Any]], platforms: list[str]
) -> list[str]:
    """One warning per group of target platforms left without a wheel for some packages."""
    targets = WheelTargets(platforms, req.python_version, req.linux_target, req.macosx_target)
    by_platforms: dict[tuple[str, ...], list[str]] = {}
    for stranded in check_wheels(packages, targets):
        by_platforms.setdefault(tuple(stranded.platforms), []).append(
            f"{stranded.name}=={stranded.version}"
        )
    limits = [f"{key} {getattr(req, key)}" for key in ("linux_target", "macosx_target")]
    within = [limit for limit in limits if not limit.endswith(" None")]
    suffix = f" within {' and '.join(within)}" if within else ""
    return [
        f"layer '{req.layer}': no wheel for Python {_python_xy(req)} on {', '.join(where)}"
        f"{suffix} for {', '.join(names)}; building the layer there will fail "
        "(layers install wheels only, as with venvstacks)"
        for where, names in by_platforms.items()
    ]


def _result(data: dict[str, Any], pins: list[Pin], layer: str) -> LockResult:
    """What the lock installs, and which lower layer provides each shared entry."""
    result = LockResult(packages={}, provided_by_lower={})
    for raw in data.get("packages", []):
        entry = entry_from(raw, f"lock of layer '{layer}'")
        name = canonicalize_name(entry.name)
        if not entry.shared:
            result.packages.setdefault(name, str(entry.version))
            continue
        result.provided_by_lower.setdefault(name, str(entry.version))
        provider = next((pin for pin in pins if canonicalize_name(pin.name) == name), None)
        if provider is not None:
            result.providers.setdefault(name, provider.layer)
    return result

"""Lock one layer of a stack into a PEP 751 ``pylock`` file.

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
  ``[tool.kernelstacks.provided-by-lower]`` (see :mod:`kernelstacks.lock.pylock`).
* The stack's ``[tool.uv]`` settings go into a generated ``uv.toml`` passed with
  ``--config-file`` (``uv_env`` sets ``UV_NO_CONFIG``, so settings in the generated
  ``pyproject.toml`` would be ignored); only the keys uv accepts in projects alone (``sources``,
  ``conflicts``...) are written into the generated ``pyproject.toml``.
* Wheels that fit none of the target platforms (or need a newer glibc / macOS than
  ``linux_target`` / ``macosx_target``) are dropped from the lock, so it lists exactly what the
  targets can install; a package left with nothing installable on a target is a :class:`LockError`
  (see :mod:`kernelstacks.lock.wheels`).
* The output has no header or timestamps (``--no-header``), so locking the same inputs against
  the same index state (``exclude-newer``) gives byte-identical files.
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

from kernelstacks._support import atomic
from kernelstacks._support.uv import run_uv, uv_output
from kernelstacks._support.versions import PythonVersion
from kernelstacks.lock.errors import LockError
from kernelstacks.lock.pylock import (
    LowerPin,
    annotate,
    constraints,
    drop_provided,
    locked_versions,
    read_lower_pins,
    read_pylock,
)
from kernelstacks.lock.wheels import (
    PLATFORMS,
    Stranded,
    WheelTargets,
    filter_wheels,
    platform_marker,
)

__all__ = [
    "PLATFORMS",
    "LockError",
    "LockRequest",
    "LockResult",
    "lock_layer",
    "read_pylock",
]

# `[tool.uv]` keys uv refuses in a uv.toml: they belong to the generated project.
_PROJECT_ONLY_KEYS = frozenset(
    {"sources", "conflicts", "dev-dependencies", "default-groups", "build-backend"}
)
# Keys written to both: uv resolves with the uv.toml's indexes, but checks that every index a
# project source names is declared in the project itself.
_BOTH_KEYS = frozenset({"index"})
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
# A line of uv's output that starts a new item ("  cause: ...", "  hint: ...", "  Caused by:
# ...", a tree branch) rather than continuing the line before it.
_NEW_ITEM = re.compile(r"\s*(?:[A-Za-z]+(?: by)?:(?:\s|$)|[×╰├│─▶])")


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


# --------------------------------------------------------------------------------------------
# Public API


def lock_layer(req: LockRequest, output: Path) -> LockResult:
    """Resolve ``req`` with uv and write its pylock file to ``output`` atomically."""
    xy = _python_xy(req)
    platforms = _check_platforms(req)
    _check_targets(req)
    lower = read_lower_pins(req.lower_locks)
    with tempfile.TemporaryDirectory(prefix="kernelstacks-lock-") as tmp:
        project = Path(tmp)
        config = _write_uv_config(project, req.uv_settings)
        pyproject = _project_document(req, xy, platforms, constraints(lower, platforms, xy))
        (project / "pyproject.toml").write_text(tomlkit.dumps(pyproject), encoding="utf-8")
        _run_lock(req, project, config, xy, lower)
        text = _run_export(req, project, config)
    doc = tomlkit.parse(text)
    provided = drop_provided(doc, lower, platforms, xy)
    _filter_wheels(req, doc, platforms, xy)
    annotate(doc, req.layer, provided, lower)
    atomic.write_text(output, tomlkit.dumps(doc))
    return LockResult(packages=locked_versions(doc), provided_by_lower=provided)


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
        f"python_version == '{xy}' and implementation_name == 'cpython' and {platform_marker(p)}"
        for p in platforms
    ]
    tool_uv: dict[str, Any] = {
        k: v for k, v in plain.items() if k in _PROJECT_ONLY_KEYS | _BOTH_KEYS
    }
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
    if sys.version_info[:2] >= PythonVersion.parse(xy).xy_tuple:
        return ["--python", sys.executable]
    return []


# --------------------------------------------------------------------------------------------
# Running uv


def _run_lock(
    req: LockRequest, project: Path, config: Path, xy: str, lower: list[LowerPin]
) -> None:
    """Resolve the generated project; turn uv's refusal into a :class:`LockError`."""
    args: list[str | os.PathLike[str]] = ["lock", "--directory", project, "--config-file", config]
    args += _lock_python(req, xy)
    proc = run_uv([*args, "--no-progress", "--color", "never"], check=False)
    if proc.returncode != 0:
        raise LockError(_explain_failure(req, xy, proc.stderr, lower))


def _run_export(req: LockRequest, project: Path, config: Path) -> str:
    """The resolved project as pylock text, without the project itself or a header."""
    args: list[str | os.PathLike[str]] = ["export", "--directory", project, "--config-file", config]
    args += ["--frozen", "--format", "pylock.toml", "--no-emit-project", "--no-header"]
    proc = run_uv([*args, "--no-progress", "--color", "never", "--quiet"], check=False)
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


def _unwrapped(text: str) -> str:
    """uv's output with each wrapped message joined back onto one line.

    uv (0.13 and later) wraps long messages at the terminal width and indents the continuation
    lines, so a sentence the patterns above look for may be split anywhere between words. A line
    indented deeper than the line it follows, that does not start an item of its own, continues
    that line. Separate messages stay on separate lines, so a pattern never matches across two.
    """
    messages: list[tuple[int, str]] = []  # (indentation of its first line, message)
    for line in text.splitlines():
        indent = len(line) - len(line.lstrip())
        previous = messages[-1] if messages else (0, "")
        continues = previous[1] and line.strip() and indent > previous[0]
        if continues and not _NEW_ITEM.match(line):
            messages[-1] = (previous[0], f"{previous[1]} {line.strip()}")
        else:
            messages.append((indent, line.rstrip()))
    return "\n".join(message for _, message in messages)


def _explain_failure(req: LockRequest, xy: str, stderr: str, lower: list[LowerPin]) -> str:
    """A message naming the layer, the requirement or lower-layer pin at fault, and uv's words."""
    said = _unwrapped(stderr)
    details = [
        f"requirement '{name}' was not found on the package index"
        for name in dict.fromkeys(_NOT_FOUND.findall(said))
    ]
    if not details:
        details = [
            f"'{pin.name}' is pinned to {pin.version} by lower layer '{pin.layer}' "
            f"({pin.path}) and this layer's requirements need a different version"
            for pin in _conflicting_pins(said, lower)
        ]
    if _BAD_CONFIG.search(said):
        details.append("uv rejected the stack's [tool.uv] settings")
    if _NO_INTERPRETER.search(said):
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


def _conflicting_pins(stderr: str, lower: list[LowerPin]) -> list[LowerPin]:
    """Lower-layer pins that uv's explanation names (first lock per package)."""
    seen: dict[str, LowerPin] = {}
    for pin in lower:
        if pin.name not in seen and _mentions(stderr, pin.name):
            seen[pin.name] = pin
    return list(seen.values())


# --------------------------------------------------------------------------------------------
# Post-processing the exported lock


def _filter_wheels(
    req: LockRequest, doc: tomlkit.TOMLDocument, platforms: list[str], xy: str
) -> None:
    """Keep only wheels some target can install; fail if a target is left with nothing."""
    targets = WheelTargets(platforms, xy, req.linux_target, req.macosx_target)
    stranded = filter_wheels(doc, targets)
    if stranded is not None:
        raise LockError(_stranded_message(req, stranded))


def _stranded_message(req: LockRequest, stranded: Stranded) -> str:
    """Explain that a locked package has no wheel (and no sdist) for some target platforms."""
    targets = []
    if req.linux_target:
        targets.append(f"linux_target {req.linux_target}")
    if req.macosx_target:
        targets.append(f"macosx_target {req.macosx_target}")
    limits = f" within {' and '.join(targets)}" if targets else ""
    return (
        f"Cannot lock layer '{req.layer}': {stranded.name}=={stranded.version} has no wheel "
        f"for Python {_python_xy(req)} on {', '.join(stranded.platforms)}{limits}, and no sdist."
    )

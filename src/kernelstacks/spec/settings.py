"""The stack's own settings: ``[tool.uv]`` and ``[tool.kernelstacks]``, and what layers use of them.

``[tool.uv]`` (or a ``venvstacks.uv.toml`` beside the stack file, as venvstacks reads) is passed
to uv; layers may name its indexes. ``[tool.kernelstacks]`` holds our keys only: the stack name
and which applications become Jupyter kernels (those get ipykernel and ipywidgets added).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from kernelstacks._support.errors import Problem, did_you_mean
from kernelstacks.spec.fields import PLAIN_NAME_RE, TOOL_FIELDS_BY_NAME, Kind, check_requirement
from kernelstacks.spec.model import matches
from kernelstacks.spec.problems import ProblemLog, RawLayer

#: What ``[tool.kernelstacks] kernels`` adds to the applications it names.
KERNEL_PACKAGES = ("ipykernel", "ipywidgets")

#: The file venvstacks reads uv settings from when the stack file has no ``[tool.uv]``.
UV_SETTINGS_FILE = "venvstacks.uv.toml"


def _tool(doc: dict[str, Any], log: ProblemLog) -> dict[str, Any]:
    """The ``[tool]`` table (empty when absent, or reported when it is not a table)."""
    tool = doc.get("tool", {})
    if not isinstance(tool, dict):
        log.problem("'tool' must be a table", key="tool", label="top level")
        return {}
    return tool


def uv_settings(doc: dict[str, Any], root: Path, log: ProblemLog) -> dict[str, Any]:
    """``[tool.uv]``, or a ``venvstacks.uv.toml`` in ``root`` (the stack file's folder)."""
    tool = _tool(doc, log)
    if "uv" in tool:
        if not isinstance(tool["uv"], dict):
            log.problem("'tool.uv' must be a table", key="tool.uv", label="top level")
            return {}
        return dict(tool["uv"])
    side = root / UV_SETTINGS_FILE
    if side.is_file():
        try:
            return tomllib.loads(side.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError) as exc:
            log.add(Problem(str(side), f"cannot read uv settings: {exc}"))
    return {}


def uv_settings_label(doc: dict[str, Any]) -> str:
    """Where the uv settings came from, as problems name it."""
    tool = doc.get("tool")
    return "[tool.uv]" if isinstance(tool, dict) and "uv" in tool else UV_SETTINGS_FILE


def tool_settings(doc: dict[str, Any], log: ProblemLog) -> dict[str, Any]:
    """Validate ``[tool.kernelstacks]``: our own keys only."""
    tool = _tool(doc, log)
    ours = tool.get("kernelstacks", {})
    label = "[tool.kernelstacks]"
    if not isinstance(ours, dict):
        log.problem("must be a table", key="tool.kernelstacks", label=label)
        return {}
    settings: dict[str, Any] = {}
    for key, value in ours.items():
        fld = TOOL_FIELDS_BY_NAME.get(key)
        if fld is None:
            hint = did_you_mean(key, TOOL_FIELDS_BY_NAME)
            log.problem(f"unknown key '{key}'{hint}", key=key, label=label)
            continue
        error = fld.check(value)
        if error:
            log.problem(error, key=key, label=label)
            continue
        settings[key] = value
    name = settings.get("name")
    if isinstance(name, str) and not PLAIN_NAME_RE.match(name):
        log.problem(
            f"invalid stack name {name!r}: use only letters, digits, '.', '_' and '-'",
            key="name",
            label=label,
        )
    return settings


# -- pass 9: kernel applications named in the settings -------------------------------------------


def check_kernel_patterns(raw: list[RawLayer], settings: dict[str, Any], log: ProblemLog) -> None:
    """Each ``[tool.kernelstacks] kernels`` pattern must match an application."""
    apps = [r.name for r in raw if r.kind is Kind.APPLICATION and r.name_ok]
    for pattern in settings.get("kernels", []):
        if not any(matches(a, Kind.APPLICATION.build_name(a), [pattern]) for a in apps):
            log.problem(
                f"pattern '{pattern}' matches no application{did_you_mean(pattern, apps)}",
                key="kernels",
                label="[tool.kernelstacks]",
            )


# -- kernel applications ------------------------------------------------------------------------


def is_kernel_app(name: str, settings: dict[str, Any]) -> bool:
    """Whether ``[tool.kernelstacks] kernels`` names the application ``name``."""
    return matches(name, Kind.APPLICATION.build_name(name), settings.get("kernels") or [])


def with_kernel_packages(requirements: list[str]) -> list[str]:
    """Requirements plus ipykernel/ipywidgets unless already required (by any specifier).

    Adding them is safe even when a framework provides them: the app's lock pins them to the
    framework's version and leaves them out of the app layer.
    """
    present = {
        canonicalize_name(Requirement(r).name) for r in requirements if check_requirement(r) is None
    }
    return [*requirements, *(p for p in KERNEL_PACKAGES if p not in present)]

"""The keys a venvstacks stack file may hold, with their types and meaning.

This table drives validation (unknown keys, wrong types, missing keys) and the spec reference in
``docs/spec-format.md``, so the two cannot drift apart.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from packaging.requirements import InvalidRequirement, Requirement

from kernelstacks_kernel.contract import SPEC_SECTIONS, build_name


class Kind(StrEnum):
    """The three layer kinds, in stacking order."""

    RUNTIME = "runtime"
    FRAMEWORK = "framework"
    APPLICATION = "application"

    @property
    def section(self) -> str:
        """The top-level array of tables holding layers of this kind."""
        return SPEC_SECTIONS[self.value]

    def build_name(self, name: str) -> str:
        """venvstacks build names: runtimes as named, ``framework-<n>``, ``app-<n>``."""
        return build_name(self.value, name)


SECTIONS = {k.section: k for k in Kind}

#: The six venvstacks target platforms.
PLATFORMS = (
    "win_amd64",
    "win_arm64",
    "linux_x86_64",
    "linux_aarch64",
    "macosx_arm64",
    "macosx_x86_64",
)

#: Names venvstacks recommends: letters, digits, '.', '_' and '-' (others load with a warning).
PLAIN_NAME_RE = re.compile(r"^[A-Za-z0-9._-]+\Z")
#: Layer names become directory names on every venvstacks platform: no path separators, no
#: characters Windows forbids in file names, no control characters, no space at either end.
#: ``\Z``, not ``$``: ``$`` also matches before a final newline, which let ``"app\n"`` through.
NAME_RE = re.compile(r'^(?![.]{1,2}\Z)(?!\s)[^/\\:*?"<>|\x00-\x1f\x7f]+(?<!\s)\Z')
IMPLEMENTATION_RE = re.compile(r"^(?P<impl>cpython)@(?P<version>3\.\d{1,2}(?:\.\d{1,3})?)$")
LINUX_TARGET_RE = re.compile(r"^glibc(?:@\d+\.\d+)?$")
MACOSX_TARGET_RE = re.compile(r"^\d+(?:\.\d+)?$")

#: A checker returns None when the value is fine, or a message saying what is wrong.
Checker = Callable[[object], "str | None"]


def _type_name(value: object) -> str:
    names = {str: "a string", bool: "a boolean", int: "an integer", float: "a number"}
    names.update({list: "a list", dict: "a table"})
    return names.get(type(value), type(value).__name__)


def is_string(value: object) -> str | None:
    """Plain TOML string."""
    return None if isinstance(value, str) else f"must be a string, not {_type_name(value)}"


def is_bool(value: object) -> str | None:
    """TOML boolean (``true``/``false``), not the string "yes"."""
    if isinstance(value, bool):
        return None
    return f"must be true or false, not {_type_name(value)} {value!r}"


def is_string_list(value: object) -> str | None:
    """A list of strings; a bare string is the most common slip, so say so."""
    if isinstance(value, str):
        return f'must be a list of strings, not a string (write ["{value}"])'
    if not isinstance(value, list):
        return f"must be a list of strings, not {_type_name(value)}"
    for i, item in enumerate(value):
        if not isinstance(item, str):
            return f"item {i + 1} must be a string, not {_type_name(item)} {item!r}"
    return None


def is_table(value: object) -> str | None:
    """A TOML table (its keys are checked where they are used)."""
    return None if isinstance(value, dict) else f"must be a table, not {_type_name(value)}"


def is_string_table(value: object) -> str | None:
    """A table whose values are strings (package or index name mappings)."""
    if not isinstance(value, dict):
        return f"must be a table of strings, not {_type_name(value)}"
    for k, v in value.items():
        if not isinstance(v, str):
            return f"entry '{k}' must be a string, not {_type_name(v)}"
    return None


def check_requirement(text: str) -> str | None:
    """PEP 508 requirement check, with packaging's own explanation."""
    try:
        Requirement(text)
    except InvalidRequirement as exc:
        first = str(exc).splitlines()[0]
        return f"invalid requirement {text!r}: {first}"
    return None


@dataclass(frozen=True)
class Field:
    """One key of a layer table."""

    name: str
    kinds: frozenset[Kind]
    check: Checker
    doc: str
    required: bool = False


_ALL = frozenset(Kind)
_UPPER = frozenset({Kind.FRAMEWORK, Kind.APPLICATION})
_RT = frozenset({Kind.RUNTIME})
_APP = frozenset({Kind.APPLICATION})

LAYER_FIELDS: tuple[Field, ...] = (
    Field(
        "name",
        _ALL,
        is_string,
        "Layer name (a directory name); letters, digits, '.', '_' and '-' are recommended.",
        True,
    ),
    Field(
        "requirements",
        _ALL,
        is_string_list,
        "PEP 508 requirements installed in this layer (may be empty, must be present).",
        True,
    ),
    Field(
        "python_implementation",
        _RT,
        is_string,
        'Runtime interpreter, "cpython@X.Y" or "cpython@X.Y.Z".',
        True,
    ),
    Field("runtime", _UPPER, is_string, "Name of the runtime layer (or use `frameworks`)."),
    Field("frameworks", _UPPER, is_string_list, "Framework layers this layer builds on."),
    Field(
        "launch_module",
        _APP,
        is_string,
        "Path (relative to the stack file) of the module or package run with `python -m`.",
        True,
    ),
    Field(
        "support_modules",
        _APP,
        is_string_list,
        "Paths of extra modules/packages copied into the application layer.",
    ),
    Field("platforms", _ALL, is_string_list, "Target platforms (default: those of lower layers)."),
    Field("versioned", _ALL, is_bool, "Deploy as `<build-name>@<lock_version>`."),
    Field(
        "linux_target",
        _ALL,
        is_string,
        'Linux wheels: "glibc" (uv\'s default glibc) or the newest glibc allowed, "glibc@2.28".',
    ),
    Field("macosx_target", _ALL, is_string, 'Minimum macOS version for wheels, e.g. "12.0".'),
    Field(
        "dynlib_exclude",
        _ALL,
        is_string_list,
        "Glob patterns (matched against the end of the path) of this layer's shared libraries "
        "that upper layers must not link to.",
    ),
    Field(
        "priority_indexes", _ALL, is_string_list, "Named `[tool.uv]` indexes to prefer (in order)."
    ),
    Field("package_indexes", _ALL, is_string_table, "Package name -> named index to take it from."),
    Field(
        "index_overrides",
        _ALL,
        is_string_table,
        "Index name -> index name: accept a lower layer's `package_indexes` entry for that index "
        "being replaced by this one (this layer only; nothing to override in a runtime).",
    ),
)

FIELDS_BY_NAME = {f.name: f for f in LAYER_FIELDS}

#: Old venvstacks keys: accepted with a warning (``fully_versioned_name`` is an alias).
DEPRECATED_FIELDS = {
    "fully_versioned_name": "renamed to 'python_implementation'",
    "build_requirements": "no longer has any effect and is ignored",
}

TOP_LEVEL_KEYS = ("runtimes", "frameworks", "applications", "tool")

#: Keys of ``[tool.kernelstacks]``.
TOOL_FIELDS: tuple[Field, ...] = (
    Field("name", _ALL, is_string, "Stack name used in kernel names (default: the folder name)."),
    Field(
        "kernels",
        _ALL,
        is_string_list,
        "Application name patterns that become Jupyter kernels (default: all with ipykernel).",
    ),
    Field(
        "kernelspec",
        _ALL,
        is_table,
        "Per-application kernel settings: `[tool.kernelstacks.kernelspec.<app>]` with "
        "`display_name`, `logo`, `env`, `interrupt_mode`.",
    ),
    Field(
        "modules_outside_stack",
        _ALL,
        is_bool,
        "Allow `launch_module`/`support_modules` outside the stack folder, or symlinks leading "
        "out of it (default false: refused, so a published layer only holds the stack's files).",
    ),
)
TOOL_FIELDS_BY_NAME = {f.name: f for f in TOOL_FIELDS}


def fields_for(kind: Kind) -> dict[str, Field]:
    """The keys valid for one layer kind."""
    return {f.name: f for f in LAYER_FIELDS if kind in f.kinds}

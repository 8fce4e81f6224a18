"""Pass 2 of validation: top-level keys, and each layer table's keys, value types and values.

Unknown keys, keys of another layer kind, missing required keys and wrong types are reported
here; a key with a wrong type is dropped (and remembered in :attr:`RawLayer.bad_keys`) so later
passes do not trip over it again.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from kernelstacks._support.errors import did_you_mean
from kernelstacks._support.paths import max_name_bytes
from kernelstacks.spec.fields import (
    DEPRECATED_FIELDS,
    FIELDS_BY_NAME,
    IMPLEMENTATION_RE,
    LINUX_TARGET_RE,
    MACOSX_TARGET_RE,
    NAME_RE,
    PLAIN_NAME_RE,
    PLATFORMS,
    SECTIONS,
    TOP_LEVEL_KEYS,
    Kind,
    check_requirement,
    fields_for,
)
from kernelstacks.spec.problems import ProblemLog, RawLayer
from kernelstacks_kernel.contract import DEFAULT_BUILD_DIR


def check_document(doc: dict[str, Any], log: ProblemLog) -> list[RawLayer]:
    """Top-level keys, then each layer table's keys and value types."""
    for key in doc:
        if key not in TOP_LEVEL_KEYS:
            hint = did_you_mean(key, TOP_LEVEL_KEYS)
            log.problem(f"unknown top-level key '{key}'{hint}", key=key, label="top level")
    if not any(section in doc for section in SECTIONS):
        log.problem("no layers: define at least one [[runtimes]] table", label="top level")
    raw: list[RawLayer] = []
    for section, kind in SECTIONS.items():
        tables = doc.get(section, [])
        if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
            log.problem(
                f"'{section}' must be an array of tables, written [[{section}]]",
                key=section,
                label="top level",
            )
            continue
        for index, table in enumerate(tables):
            raw.append(_check_table(kind, index, table, log))
    return raw


def _label(kind: Kind, index: int, table: dict[str, Any]) -> str:
    """How problems name a layer: by its name, or by its position when it has none."""
    name = table.get("name")
    if isinstance(name, str) and name:
        shown = name if len(name) <= 60 else name[:57] + "..."
        # repr() shows a newline or other control character instead of printing it
        return f"{kind.value} " + (f"'{shown}'" if shown.isprintable() else repr(shown))
    return f"{kind.section}[{index}] (table {index + 1} of [[{kind.section}]])"


def _check_table(kind: Kind, index: int, table: dict[str, Any], log: ProblemLog) -> RawLayer:
    """Keys known for the kind, required keys present, values of the right type."""
    layer = RawLayer(kind, index, dict(table), _label(kind, index, table))
    allowed = fields_for(kind)
    _handle_deprecated(layer, log)
    for key in list(layer.data):
        if key in allowed:
            continue
        if key in FIELDS_BY_NAME:
            where = sorted(k.section for k in FIELDS_BY_NAME[key].kinds)
            log.problem(
                f"'{key}' is not valid in [[{kind.section}]] (only in "
                + ", ".join(f"[[{w}]]" for w in where)
                + ")",
                layer,
                key,
            )
        else:
            hint = did_you_mean(key, allowed)
            log.problem(f"unknown key '{key}'{hint}", layer, key)
        layer.data.pop(key, None)
    for name, fld in allowed.items():
        if name not in layer.data:
            if fld.required:
                log.problem(f"missing required key '{name}'", layer, name)
            continue
        error = fld.check(layer.data[name])
        if error:
            log.problem(error, layer, name)
            layer.data.pop(name)
            layer.bad_keys.add(name)
    _check_values(layer, log)
    return layer


def _handle_deprecated(layer: RawLayer, log: ProblemLog) -> None:
    """Accept old venvstacks keys the way venvstacks does, with a warning."""
    data = layer.data
    if "build_requirements" in data:
        data.pop("build_requirements")
        log.warn(f"{layer.label}: 'build_requirements' is ignored (deprecated)")
    if "fully_versioned_name" in data and layer.kind is Kind.RUNTIME:
        if "python_implementation" in data:
            log.problem(
                "set 'python_implementation' only ('fully_versioned_name' is its old name)",
                layer,
                "fully_versioned_name",
            )
            data.pop("fully_versioned_name")
        else:
            data["python_implementation"] = data.pop("fully_versioned_name")
            log.warn(
                f"{layer.label}: 'fully_versioned_name' is deprecated; "
                f"{DEPRECATED_FIELDS['fully_versioned_name']}"
            )


def _check_values(layer: RawLayer, log: ProblemLog) -> None:
    """Value-level checks once the types are right."""
    _check_name(layer, log)
    for i, req in enumerate(layer.data.get("requirements", [])):
        error = check_requirement(req)
        if error:
            log.problem(f"item {i + 1}: {error}", layer, "requirements")
    _check_implementation(layer, log)
    _check_platform_names(layer, log)
    _check_targets(layer, log)
    data = layer.data
    if data.get("frameworks") == [] and "runtime" not in data:
        log.problem(
            "'frameworks' is empty: name at least one framework, or use 'runtime'",
            layer,
            "frameworks",
        )


def _check_name(layer: RawLayer, log: ProblemLog) -> None:
    """Names become directory names: refuse what no file system takes, warn where venvstacks does.

    venvstacks accepts any name but recommends letters, digits, ``_`` and ``-``; ``@`` loads with
    a warning because versioned layers deploy as ``<build-name>@<lock_version>``.
    """
    name = layer.data.get("name")
    if not isinstance(name, str):
        return
    if not NAME_RE.match(name):
        log.problem(
            f"invalid name {name!r}: a layer name becomes a directory name, so it must not be "
            'empty, "." or "..", contain / \\ : * ? " < > | or control characters, or start '
            "or end with a space",
            layer,
            "name",
        )
        return
    limit = max_name_bytes(Path(log.file).parent / DEFAULT_BUILD_DIR)
    if len(layer.kind.build_name(name).encode()) > limit:
        log.problem(
            f"name is too long ({len(name.encode())} bytes): the layer's directory and the "
            f"lock, archive and staging files named after it must fit this file system's "
            f"limit, so its build name may be at most {limit} bytes",
            layer,
            "name",
        )
        return
    if not PLAIN_NAME_RE.match(name):
        odd = "".join(dict.fromkeys(c for c in name if not PLAIN_NAME_RE.match(c)))
        why = "venvstacks recommends only letters, digits, '.', '_' and '-'"
        if "@" in odd:
            why += "; '@' also separates a versioned layer's name from its lock version"
        log.warn(f"{layer.label}: name {name!r} contains {odd!r} ({why})")


def _check_implementation(layer: RawLayer, log: ProblemLog) -> None:
    """``python_implementation`` is ``cpython@X.Y`` or ``cpython@X.Y.Z``."""
    impl = layer.data.get("python_implementation")
    if isinstance(impl, str) and not IMPLEMENTATION_RE.match(impl):
        log.problem(
            f'invalid python_implementation {impl!r}: expected "cpython@X.Y" or '
            '"cpython@X.Y.Z" (for example "cpython@3.12")',
            layer,
            "python_implementation",
        )


def _check_platform_names(layer: RawLayer, log: ProblemLog) -> None:
    """Each listed platform is one of the six venvstacks platforms."""
    for plat in layer.data.get("platforms", []):
        if plat not in PLATFORMS:
            log.problem(
                f"unknown platform '{plat}'{did_you_mean(plat, PLATFORMS)} "
                f"(known: {', '.join(PLATFORMS)})",
                layer,
                "platforms",
            )


def _check_targets(layer: RawLayer, log: ProblemLog) -> None:
    """``linux_target`` is ``glibc`` or ``glibc@X.Y``; ``macosx_target`` a version."""
    target = layer.data.get("linux_target")
    if isinstance(target, str) and not LINUX_TARGET_RE.match(target):
        if target.partition("@")[0] != "glibc":
            hint = f' (write "glibc@{target}")' if re.fullmatch(r"\d+\.\d+", target) else ""
            message = f"invalid linux_target {target!r}: the libc must be 'glibc'{hint}"
        else:
            message = f"invalid linux_target {target!r}: the glibc version must be X.Y"
        log.problem(
            f'{message}; expected "glibc" or "glibc@X.Y" (e.g. "glibc@2.28")', layer, "linux_target"
        )
    target = layer.data.get("macosx_target")
    if isinstance(target, str) and not MACOSX_TARGET_RE.match(target):
        log.problem(
            f'invalid macosx_target {target!r}: expected a macOS version such as "14" or "12.0"',
            layer,
            "macosx_target",
        )

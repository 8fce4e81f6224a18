"""Pass 8 of validation: package indexes — the named indexes, what layers say about them, and
which index each layer takes each package from.

``[tool.uv]`` defines the indexes (``[[tool.uv.index]]``) and may send packages to named ones
(``sources``, index sources only, as in venvstacks). A layer may prefer indexes
(``priority_indexes``, that layer only), take packages from named indexes (``package_indexes``,
inherited by every layer above) and accept an expected conflict between inherited entries
(``index_overrides``). The inheritance rules are venvstacks' (``StackSpec._resolve_layer_deps``):

* a layer on a runtime inherits the runtime's entries;
* a layer on frameworks inherits theirs in ``sys.path`` order; when two of them send a package to
  different indexes the first one wins, but only if ``index_overrides`` maps the other's index to
  the first's, otherwise the stack is invalid;
* the layer's own entries win over inherited ones, again only if ``index_overrides`` maps the
  inherited index to the layer's.

Every conflict is reported with the layers that declared both entries and the exact
``index_overrides`` entry that accepts it.
"""

from __future__ import annotations

import re
from typing import Any

from packaging.utils import canonicalize_name

from kernelstacks._support.errors import did_you_mean
from kernelstacks.spec.fields import Kind
from kernelstacks.spec.problems import LayersByName, ProblemLog, RawLayer, bottom_up

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def index_names(uv: dict[str, Any], log: ProblemLog, where: str) -> list[str]:
    """Names of the indexes in ``[tool.uv]`` (``where`` says which file/table), shape checked."""
    indexes = uv.get("index", [])
    if not isinstance(indexes, list) or not all(isinstance(i, dict) for i in indexes):
        message = "'index' must be an array of tables, written [[index]]"
        log.problem(message, key="index", label=where)
        return []
    names: list[str] = []
    for position, entry in enumerate(indexes, 1):
        if not isinstance(entry.get("url"), str):
            log.problem(f"index {position} has no 'url' string", key="index", label=where)
        name = entry.get("name")
        if name is None:
            continue
        if not isinstance(name, str) or not name:
            log.problem(f"index {position}: 'name' must be a string", key="index", label=where)
        elif name in names:
            log.problem(f"index name '{name}' is defined twice", key="index", label=where)
        else:
            names.append(name)
    return names


def check_common_sources(uv: dict[str, Any], known: list[str], log: ProblemLog, where: str) -> None:
    """``[tool.uv] sources`` may only send packages to named indexes (venvstacks' rule)."""
    sources = uv.get("sources", {})
    if not isinstance(sources, dict):
        log.problem("'sources' must be a table", key="sources", label=where)
        return
    seen: dict[str, str] = {}
    for package, source in sources.items():
        index = source.get("index") if isinstance(source, dict) else None
        if not isinstance(index, str):
            log.problem(
                f"source of '{package}' must name an index ({package} = {{ index = \"...\" }}): "
                "venvstacks stacks take packages only from indexes",
                key="sources",
                label=where,
            )
        elif index not in known:
            log.problem(_unknown(index, known), key="sources", label=where)
        _note_duplicate(package, seen, log, where=where)


def check_layer_indexes(raw: list[RawLayer], known: list[str], log: ProblemLog) -> None:
    """Index names a layer uses exist; a package appears once in its ``package_indexes``."""
    for layer in raw:
        data = layer.data
        used = [("priority_indexes", n) for n in data.get("priority_indexes", [])]
        used += [("package_indexes", n) for n in data.get("package_indexes", {}).values()]
        for source, target in data.get("index_overrides", {}).items():
            used += [("index_overrides", source), ("index_overrides", target)]
        for key, name in used:
            if name not in known:
                log.problem(_unknown(name, known), layer, key)
        seen: dict[str, str] = {}
        for package in data.get("package_indexes", {}):
            _note_duplicate(package, seen, log, layer=layer)
        if layer.kind is Kind.RUNTIME and data.get("index_overrides"):
            log.warn(f"{layer.label}: 'index_overrides' has no effect on a runtime layer")


def _unknown(name: str, known: list[str]) -> str:
    where = f" (defined: {', '.join(known)})" if known else " (no named indexes are defined)"
    return f"unknown index '{name}'{did_you_mean(name, known)}{where}"


def _note_duplicate(
    package: str,
    seen: dict[str, str],
    log: ProblemLog,
    *,
    layer: RawLayer | None = None,
    where: str | None = None,
) -> None:
    """Report a package listed twice under spellings that name the same distribution."""
    normal = canonicalize_name(package)
    if normal in seen:
        message = f"'{seen[normal]}' and '{package}' are the same package (listed twice)"
        key = "package_indexes" if layer is not None else "sources"
        log.problem(message, layer, key, label=where)
    else:
        seen[normal] = package


# -- inheritance ---------------------------------------------------------------------------------


def resolve_package_indexes(raw: list[RawLayer], by_name: LayersByName, log: ProblemLog) -> None:
    """Give each layer its effective ``package_indexes`` and report inconsistent inheritance.

    Lower layers are resolved first (forward references are allowed, so this follows the layer
    graph rather than the file order). Layers whose references could not be followed are left
    alone: their problem has been reported already.
    """
    for layer, lowers in bottom_up(raw, by_name):
        _inherit(layer, lowers, log)


def _inherit(layer: RawLayer, lowers: list[RawLayer], log: ProblemLog) -> None:
    """venvstacks' merge: inherited entries (checked), then the layer's own (checked)."""
    overrides: dict[str, str] = layer.data.get("index_overrides", {})
    merged: dict[str, tuple[str, str]] = {}  # package -> (index, layer that declared it)
    if layer.kind is not Kind.RUNTIME and "runtime" in layer.data:
        merged.update(lowers[-1].package_indexes if lowers else {})
    elif lowers:
        for framework in lowers[:-1]:  # C3 order; the runtime's entries come through them
            for package, (index, origin) in framework.package_indexes.items():
                if package not in merged:
                    merged[package] = (index, origin)
                    continue
                kept, kept_origin = merged[package]
                if kept != overrides.get(index, index):
                    log.problem(
                        f"inconsistent package indexes for '{package}' from lower layers: "
                        f"'{kept_origin}' takes it from index '{kept}' and '{origin}' from index "
                        f"'{index}'. '{kept_origin}' comes first in sys.path order; to use its "
                        f"index here, add {_override(index, kept)}",
                        layer,
                        "frameworks",
                    )
    own: dict[str, tuple[str, str]] = {}
    for package, index in layer.data.get("package_indexes", {}).items():
        normal = canonicalize_name(package)
        if normal in merged:
            inherited, origin = merged[normal]
            if index != overrides.get(inherited, inherited):
                log.problem(
                    f"'{package}' is taken from index '{index}' here, but lower layer "
                    f"'{origin}' takes it from index '{inherited}'; to replace that index in "
                    f"this layer, add {_override(inherited, index)}",
                    layer,
                    "package_indexes",
                )
        own[normal] = (index, layer.build_name)
    merged.update(own)
    layer.package_indexes = merged


def _override(source: str, target: str) -> str:
    """The ``index_overrides`` line that maps ``source`` to ``target``, as TOML."""
    key = source if _BARE_KEY.match(source) else f'"{source}"'
    return f'index_overrides = {{ {key} = "{target}" }}'

"""The uv settings one layer is locked with, and the indexes an install must know about.

venvstacks lets a layer prefer named indexes (``priority_indexes``), take given packages from
given indexes (``package_indexes``, inherited by the layers above; the spec stage has already
merged and checked them, see :mod:`kernelstacks.spec.indexes`) and accept expected conflicts
(``index_overrides``, which only matters for that check). Every lock of a layer goes through
:func:`layer_uv_settings`, so those settings reach uv in exactly one place. The result follows
venvstacks 0.8 (``_write_pyproject_file``):

* ``index``: the layer's priority indexes first, in the given order, with ``explicit`` cleared;
  then the explicit indexes that the layer's sources name; then every index that is not
  explicit (or is the default), in the order ``[tool.uv]`` defines them;
* ``sources``: the stack's ``[tool.uv] sources`` (index sources only), overridden by the layer's
  effective ``package_indexes``.

The rest of ``[tool.uv]`` passes through unchanged. Explicit indexes that only the stack-wide
``sources`` name are kept too (venvstacks drops them, and uv then fails to find the index).

Installing needs no resolution, but uv only applies an index's credentials from its environment
(``UV_INDEX_<NAME>_USERNAME`` / ``_PASSWORD``) to indexes it has been told about by name, so
:func:`install_index_env` describes the stack's indexes to ``uv pip install`` too.
"""

from __future__ import annotations

import copy
from typing import Any

from packaging.utils import canonicalize_name

from kernelstacks.spec.model import LayerSpec, StackSpec


def layer_uv_settings(stack: StackSpec, layer: LayerSpec) -> dict[str, Any]:
    """The ``[tool.uv]`` settings to lock ``layer`` with (see the module docstring)."""
    settings = copy.deepcopy(_plain(stack.uv_settings))
    indexes: list[dict[str, Any]] = settings.pop("index", [])
    common_sources: dict[str, Any] = settings.pop("sources", {})
    sources: dict[str, dict[str, Any]] = {
        canonicalize_name(name): dict(source) for name, source in common_sources.items()
    }
    sources.update({name: {"index": index} for name, index in layer.package_indexes.items()})
    layer_indexes = _layer_indexes(indexes, layer.priority_indexes, sources)
    if layer_indexes:
        settings["index"] = layer_indexes
    if sources:
        settings["sources"] = dict(sorted(sources.items()))
    return settings


def _layer_indexes(
    indexes: list[dict[str, Any]], priority: tuple[str, ...], sources: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """The index list for one layer: priority, explicit ones its sources use, then the rest."""
    named = {index["name"]: index for index in indexes if index.get("name")}
    first = [{**named[name], "explicit": False} for name in priority]
    wanted = {source.get("index") for source in sources.values()}
    explicit = [
        index
        for index in indexes
        if index.get("explicit") and index.get("name") in wanted and index["name"] not in priority
    ]
    common = [
        index
        for index in indexes
        if (index.get("default") or not index.get("explicit"))
        and index.get("name") not in priority
        and index not in explicit
    ]
    return [*first, *explicit, *common]


def install_index_env(stack: StackSpec) -> dict[str, str]:
    """``UV_INDEX`` naming every index of the stack, so uv applies their credentials on install.

    A lock file lists exact wheel URLs, so these indexes are never searched; naming them only lets
    uv match ``UV_INDEX_<NAME>_USERNAME``/``_PASSWORD`` (or credentials in the URL) to the wheel
    URLs of a private index. Passed in the environment rather than as ``--index`` arguments, so
    a URL with credentials in it never shows in a process list.
    """
    entries = []
    for index in _plain(stack.uv_settings).get("index", []):
        url = index.get("url")
        if not isinstance(url, str):
            continue
        entries.append(f"{index['name']}={url}" if index.get("name") else url)
    return {"UV_INDEX": " ".join(entries)} if entries else {}


def _plain(value: Any) -> Any:
    """tomlkit containers as plain dicts and lists (settings may come straight from tomlkit)."""
    if hasattr(value, "unwrap"):
        return value.unwrap()
    return value

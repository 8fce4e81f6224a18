"""What this kernel can import, layer by layer (stdlib only: importlib.metadata and tomllib).

Answers the questions of ``%venvstacks packages``, ``why`` and ``diff``: which distributions each
layer holds, which one wins when two layers hold the same name (the first in ``sys.path`` order;
the other is *shadowed*), what pulled a package in, and how installed versions compare with the
lock files.
"""

from __future__ import annotations

import os
import re
from collections import deque
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from kernelstacks_kernel import contract
from kernelstacks_kernel.chain import LayerInfo, current_chain, spec_path

try:  # Python >= 3.11; older runtimes read the lock and stack files with a small subset reader
    import tomllib
except ImportError:  # pragma: no cover - depends on the kernel's Python
    tomllib = None  # type: ignore[assignment]

_NAME_RE = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def canonical(name: str) -> str:
    """PEP 503 normalised name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(req: str) -> str | None:
    """The distribution name of a PEP 508 requirement string, or None."""
    match = _NAME_RE.match(req)
    return canonical(match.group(1)) if match else None


@dataclass
class Dist:
    """One installed distribution in one layer."""

    name: str
    display_name: str
    version: str
    layer: str
    layer_index: int
    size: int
    requires: list[str] = field(default_factory=list)
    shadowed_by: str | None = None
    shadows: list[str] = field(default_factory=list)
    required_by: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self)


def _dist_name(dist: metadata.Distribution) -> str | None:
    """The ``Name`` field, or None for a broken install (``.get``: indexing may raise)."""
    fields: Any = dist.metadata  # an email.message.Message; the stubs lack its .get
    return fields.get("Name")


def _dist_size(dist: metadata.Distribution, site_dir: Path) -> int:
    total = 0
    for file in dist.files or []:
        try:
            total += (site_dir / file).stat().st_size
        except OSError:
            continue
    return total


def _requires(dist: metadata.Distribution) -> list[str]:
    """Names a distribution depends on, ignoring optional extras, each name once.

    A distribution may list one name several times with different markers (one per Python
    version, say); the dependency is still one.
    """
    names: dict[str, None] = {}
    for req in dist.requires or []:
        if ";" in req and "extra" in req.split(";", 1)[1]:
            continue
        name = requirement_name(req)
        if name:
            names[name] = None
    return list(names)


def layer_dists(layer: LayerInfo, index: int, with_size: bool = True) -> list[Dist]:
    """Distributions installed in one layer's site-packages."""
    if not layer.site_dir or not os.path.isdir(layer.site_dir):
        return []
    site = Path(layer.site_dir)
    found = {}
    for dist in metadata.distributions(path=[str(site)]):
        name = _dist_name(dist)
        if not name:
            continue
        found[canonical(name)] = Dist(
            name=canonical(name),
            display_name=name,
            version=dist.version,
            layer=layer.name,
            layer_index=index,
            size=_dist_size(dist, site) if with_size else 0,
            requires=_requires(dist),
        )
    return sorted(found.values(), key=lambda d: d.name)


def inventory(chain: list[LayerInfo] | None = None, with_size: bool = True) -> list[Dist]:
    """Every distribution in every layer of the chain, with shadowing and reverse deps marked."""
    chain = current_chain() if chain is None else chain
    dists = [d for i, layer in enumerate(chain) for d in layer_dists(layer, i, with_size)]
    winners: dict[str, Dist] = {}
    for dist in dists:  # chain order == sys.path order: the first one wins
        if dist.name in winners:
            winner = winners[dist.name]
            dist.shadowed_by = winner.layer
            winner.shadows.append(dist.layer)
        else:
            winners[dist.name] = dist
    for dist in winners.values():
        for dep in dist.requires:
            if dep in winners:
                winners[dep].required_by.append(dist.name)
    return dists


def visible(dists: list[Dist]) -> dict[str, Dist]:
    """The distribution of each name that imports win (not shadowed)."""
    return {d.name: d for d in dists if d.shadowed_by is None}


# -- lock files and the spec ---------------------------------------------------------------------


def _load_toml(path: Path) -> dict[str, Any]:
    """A lock or stack file; without ``tomllib`` (Python < 3.11), the subset the kernel needs."""
    try:
        data = path.read_bytes()
    except OSError:
        return {}
    try:
        if tomllib is None:
            from kernelstacks_kernel.tomlsubset import loads

            return loads(data.decode("utf-8"))
        return tomllib.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return {}


def locked_packages(build_name: str) -> dict[str, str] | None:
    """name -> version of what a layer's pylock file installs here; None when unreadable.

    Entries a lower layer provides (venvstacks' ``from_lower_layer`` marker) are not the layer's
    own and are skipped, as are entries whose marker excludes this platform.
    """
    spec = spec_path()
    if spec is None:
        return None
    path = spec.parent / contract.lock_file_rel(build_name)
    if not path.is_file():
        return None
    data = _load_toml(path)
    return {
        canonical(p["name"]): str(p.get("version", ""))
        for p in data.get("packages", [])
        if isinstance(p, dict)
        and "name" in p
        and not contract.is_shared_marker(p.get("marker"))
        and marker_applies(p.get("marker"))
    }


def marker_applies(marker: object) -> bool:
    """Whether a lock entry's environment marker holds for this interpreter.

    The lock covers every target platform; only entries for this one should be installed.
    packaging evaluates markers when the kernel's stack has it (ipykernel depends on it);
    without it, an entry with a marker is treated as not applying here.
    """
    if not marker or not isinstance(marker, str):
        return True
    try:
        from packaging.markers import InvalidMarker, Marker
    except ImportError:
        return False
    try:
        return Marker(marker).evaluate()
    except InvalidMarker:
        return False


def declared_requirements() -> dict[str, list[str]]:
    """build name -> requirement strings, read from the stack file."""
    spec = spec_path()
    if spec is None:
        return {}
    data = _load_toml(spec)
    declared = {}
    for kind, section in contract.SPEC_SECTIONS.items():
        for table in data.get(section, []):
            if isinstance(table, dict) and isinstance(table.get("name"), str):
                reqs = table.get("requirements", [])
                build = contract.build_name(kind, table["name"])
                declared[build] = [r for r in reqs if isinstance(r, str)]
    return declared


def why(package: str, chain: list[LayerInfo] | None = None) -> dict[str, Any]:
    """Which layer provides ``package``, what pulled it in, and locked vs installed version."""
    chain = current_chain() if chain is None else chain
    dists = inventory(chain, with_size=False)
    name = canonical(package)
    seen = visible(dists)
    copies = [d for d in dists if d.name == name]
    result: dict[str, Any] = {"package": name, "found": bool(copies)}
    if not copies:
        return result
    winner = seen[name]
    build = chain[winner.layer_index].build_name
    locked = (locked_packages(build) or {}).get(name)
    result.update(
        {
            "layer": winner.layer,
            "version": winner.version,
            "locked_version": locked,
            "shadowed_copies": [{"layer": d.layer, "version": d.version} for d in copies[1:]],
            "paths": dependency_paths(name, chain, seen),
        }
    )
    return result


def dependency_paths(target: str, chain: list[LayerInfo], seen: dict[str, Dist]) -> list[list[str]]:
    """Shortest chains from declared requirements (of this kernel's layers) to ``target``."""
    declared = declared_requirements()
    paths = []
    for layer in chain:
        build = layer.build_name
        for req in declared.get(build, []):
            root = requirement_name(req)
            if root is None or root not in seen:
                continue
            path = _bfs(root, target, seen)
            if path:
                paths.append(
                    [f"{build}: {req}", *path[1:]] if len(path) > 1 else [f"{build}: {req}"]
                )
    return paths


def _bfs(start: str, goal: str, seen: dict[str, Dist]) -> list[str] | None:
    queue = deque([[start]])
    visited = {start}
    while queue:
        path = queue.popleft()
        if path[-1] == goal:
            return path
        for dep in seen[path[-1]].requires if path[-1] in seen else []:
            if dep not in visited:
                visited.add(dep)
                queue.append([*path, dep])
    return None


def diff(chain: list[LayerInfo] | None = None) -> list[dict[str, Any]]:
    """Per layer: packages whose installed state differs from the lock."""
    chain = current_chain() if chain is None else chain
    report = []
    for index, layer in enumerate(chain):
        build = layer.build_name
        locked = locked_packages(build)
        installed = {d.name: d.version for d in layer_dists(layer, index, with_size=False)}
        entry: dict[str, Any] = {"layer": layer.name, "lock_found": locked is not None}
        if locked is not None:
            entry["missing"] = sorted(set(locked) - set(installed))
            entry["extra"] = sorted(set(installed) - set(locked))
            entry["changed"] = [
                {"name": n, "locked": locked[n], "installed": installed[n]}
                for n in sorted(set(locked) & set(installed))
                if locked[n] and locked[n] != installed[n]
            ]
        report.append(entry)
    return report

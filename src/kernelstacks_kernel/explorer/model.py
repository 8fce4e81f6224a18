"""What the explorer shows, as plain data: the stack's layers and one layer's package rows.

The tree's layers come from ``kernelstacks show --json`` when the tool answers, else from this
kernel's own chain (read from the layers' metadata), so the widget is never empty. Nothing here
touches widgets, so the rules can be tested without a front-end.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kernelstacks_kernel.chain import LayerInfo, describe_layer, layer_metadata
from kernelstacks_kernel.inventory import Dist, canonical

# -- the stack's layers ---------------------------------------------------------------------------


@dataclass
class StackLayer:
    """One layer as the tree shows it: from ``show --json``, or from this kernel's chain."""

    build_name: str
    kind: str
    deploy_name: str = ""
    lower_layers: list[str] = field(default_factory=list)
    lock_state: str = "unknown"
    lock_version: int | None = None
    in_chain: bool = False
    name: str = ""


def chain_build_names(chain: Sequence[LayerInfo]) -> list[str]:
    """Build names of a chain (a deployed layer dir may be ``name@version``)."""
    return [layer.build_name for layer in chain]


def layers_from_show(document: dict[str, Any], chain_names: Sequence[str]) -> list[StackLayer]:
    """The tree's layers from the ``show --json`` document."""
    layers = []
    for record in document.get("layers", []):
        if not isinstance(record, dict) or "build_name" not in record:
            continue
        lock = record.get("lock")
        if not isinstance(lock, dict):
            lock = {}
        layers.append(
            StackLayer(
                build_name=record["build_name"],
                kind=str(record.get("kind", "")),
                deploy_name=str(record.get("deploy_name") or record["build_name"]),
                lower_layers=[str(x) for x in record.get("lower_layers", [])],
                lock_state=str(lock.get("state", "unknown")),
                lock_version=lock.get("lock_version"),
                in_chain=record["build_name"] in chain_names,
                name=str(record.get("name", "")),
            )
        )
    return layers


def layers_from_chain(chain: Sequence[LayerInfo]) -> list[StackLayer]:
    """The fallback tree: this kernel's layers only, lock state not checked (no tool needed)."""
    names = chain_build_names(chain)
    layers = []
    for position, (layer, build_name) in enumerate(zip(chain, names)):
        ks_meta = layer_metadata(Path(layer.path)).get("kernelstacks", {})
        lower = ks_meta.get("lower_layers") if isinstance(ks_meta, dict) else None
        if not isinstance(lower, list):
            lower = names[position + 1 :] if position == 0 else names[-1:]
        layers.append(
            StackLayer(
                build_name=build_name,
                kind=layer.kind,
                deploy_name=layer.name,
                lower_layers=[str(x) for x in lower if x != build_name],
                lock_state="unknown",
                lock_version=layer.lock_version,
                in_chain=True,
            )
        )
    return layers


def find_site_packages(layer_dir: Path) -> Path | None:
    """A layer's site-packages when its metadata does not say (POSIX and Windows layouts)."""
    found = sorted(layer_dir.glob("lib/python*/site-packages"))
    found += [p for p in [layer_dir / "Lib" / "site-packages"] if p.is_dir()]
    return found[0] if found else None


def layer_info_at(path: Path, kind: str) -> LayerInfo:
    """Describe a layer that is not in this kernel's chain, from its directory."""
    info = describe_layer(path, kind)
    if not info.site_dir and path.is_dir():
        site = find_site_packages(path)
        info.site_dir = str(site) if site else ""
    return info


# -- the package table ----------------------------------------------------------------------------


@dataclass
class PackageRow:
    """One line of the package table."""

    name: str
    display_name: str
    version: str
    size: int
    required_by: list[str] = field(default_factory=list)
    shared_with: list[str] = field(default_factory=list)
    shadowed_by: str | None = None
    shadows: list[str] = field(default_factory=list)

    @property
    def shared(self) -> bool:
        """Present in another layer of the stack as well."""
        return bool(self.shared_with)

    @property
    def shadowed(self) -> bool:
        """Hidden by a copy in a layer earlier in ``sys.path``."""
        return self.shadowed_by is not None


def package_rows(
    dists: Sequence[Dist], sizes: dict[str, int], elsewhere: dict[str, list[str]], layer: str
) -> list[PackageRow]:
    """Table rows of one layer; ``elsewhere`` maps a name to every layer holding it."""
    return [
        PackageRow(
            name=d.name,
            display_name=d.display_name,
            version=d.version,
            size=sizes.get(d.name, d.size),
            required_by=sorted(d.required_by),
            shared_with=[other for other in elsewhere.get(d.name, []) if other != layer],
            shadowed_by=d.shadowed_by,
            shadows=list(d.shadows),
        )
        for d in sorted(dists, key=lambda d: d.name)
    ]


def matches(row: PackageRow, text: str) -> bool:
    """Filter rule: every word of the filter is part of the name (``-``/``_``/``.`` alike)."""
    name = f"{row.name} {row.display_name.lower()}"
    return all(canonical(word) in name for word in text.split())

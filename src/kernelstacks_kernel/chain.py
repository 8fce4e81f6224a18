"""Read this kernel's layer chain from the layers' own metadata files (stdlib only).

Every layer carries venvstacks' metadata (``contract.LAYER_METADATA``); its ``pylib_dirs`` and
``base_python`` point at the lower layers relative to the layer, so the chain is found the same
way in a build directory and in a deployment with versioned names.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kernelstacks_kernel import contract


@dataclass
class LayerInfo:
    """One layer of the chain, as shown by ``%venvstacks``."""

    name: str
    kind: str
    path: str
    py_version: str = ""
    lock_version: int | None = None
    locked_at: str | None = None
    site_dir: str = ""
    present: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def build_name(self) -> str:
        """The layer's build name: a deployed layer's directory may be ``<name>@<version>``."""
        return str(self.extra.get("build_name", self.name))

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return asdict(self)


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from a file; empty when it is missing or unreadable (layers may be partial)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def layer_metadata(layer_dir: Path) -> dict[str, Any]:
    """venvstacks' metadata of one layer directory (empty when it has none)."""
    return read_json(layer_dir / contract.LAYER_METADATA)


def layer_dir_of(site_dir: Path) -> Path:
    """``<layer>/lib/pythonX.Y/site-packages`` -> ``<layer>``."""
    return site_dir.parents[2]


def spec_path() -> Path | None:
    """The stack file this kernel was registered from (set in kernel.json's env)."""
    value = os.environ.get(contract.ENV_SPEC)
    return Path(value) if value else None


def lock_info(build_name: str) -> dict[str, Any]:
    """Lock metadata of a layer from the stack's ``requirements/`` tree, if reachable."""
    spec = spec_path()
    if spec is None:
        return {}
    return read_json(spec.parent / contract.lock_meta_rel(build_name))


def describe_layer(path: Path, kind_hint: str = "") -> LayerInfo:
    """Facts about one layer directory."""
    meta = layer_metadata(path)
    ks = meta.get("kernelstacks", {}) if isinstance(meta.get("kernelstacks"), dict) else {}
    kind = ks.get("kind") or kind_hint or "layer"
    build_name = ks.get("layer") or path.name.partition("@")[0]
    lock = lock_info(build_name)
    return LayerInfo(
        name=path.name,
        kind=kind,
        path=str(path),
        py_version=str(meta.get("py_version", "")),
        lock_version=lock.get("lock_version"),
        locked_at=lock.get("locked_at"),
        site_dir=str(path / meta.get("site_dir", "")) if meta.get("site_dir") else "",
        present=path.is_dir(),
        extra={"build_name": build_name},
    )


def current_chain(prefix: str | None = None) -> list[LayerInfo]:
    """This interpreter's layers in sys.path order: app, frameworks (C3 order), runtime."""
    top = Path(prefix or sys.prefix)
    meta = layer_metadata(top)
    if not meta:
        return []
    layers = [describe_layer(top, "application" if meta.get("launch_module") else "")]
    base = meta.get("base_python")
    runtime = Path(os.path.normpath(top / base)).parents[1] if base else None
    for rel in meta.get("pylib_dirs", []):
        layer = layer_dir_of(Path(os.path.normpath(top / rel)))
        if layer != runtime:
            layers.append(describe_layer(layer, "framework"))
    if runtime is not None and base != meta.get("python"):
        layers.append(describe_layer(runtime, "runtime"))
    return layers

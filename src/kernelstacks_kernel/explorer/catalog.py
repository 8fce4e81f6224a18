"""Where each layer's packages are read from, and the package rows of one layer (cached).

This kernel's layers are shown as this kernel sees them (shadowing in ``sys.path`` order); other
layers as their own chain sees them, read from their site-packages in the build directory.
Reading site-packages is slow, so rows are kept until the next build or refresh
(:meth:`PackageCatalog.forget`). Not locked by itself: the explorer calls it under its own lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from kernelstacks_kernel.chain import LayerInfo
from kernelstacks_kernel.explorer.model import (
    PackageRow,
    StackLayer,
    chain_build_names,
    layer_info_at,
    package_rows,
)
from kernelstacks_kernel.inventory import inventory, layer_dists


class PackageCatalog:
    """The stack's layers (as the tree shows them) and the packages each one holds."""

    def __init__(
        self, chain: list[LayerInfo], build_dir: Path | None, layers: Sequence[StackLayer]
    ) -> None:
        self.chain = chain
        self.chain_names = chain_build_names(chain)
        self.build_dir = build_dir
        self.layers = list(layers)
        self._packages: dict[str, list[PackageRow]] = {}
        self._elsewhere: dict[str, list[str]] | None = None

    def replace_layers(self, layers: Sequence[StackLayer]) -> None:
        """Take the layers of a fresh ``show``; what was read of the old ones is dropped."""
        self.layers = list(layers)
        self.forget()

    def forget(self) -> None:
        """Drop the cached rows (a build or a refresh may have changed any layer)."""
        self._packages.clear()
        self._elsewhere = None

    def find(self, name: str) -> StackLayer | None:
        """A layer by build name, name or deploy name."""
        for attr in ("build_name", "name", "deploy_name"):
            for layer in self.layers:
                if name and getattr(layer, attr) == name:
                    return layer
        return None

    def view_chain(self, layer: StackLayer) -> tuple[list[LayerInfo], int]:
        """The chain a layer is seen through: this kernel's, else the layer's own."""
        if layer.build_name in self.chain_names:
            return self.chain, self.chain_names.index(layer.build_name)
        names = [layer.build_name, *layer.lower_layers]
        return [self.layer_info(name) for name in names], 0

    def layer_info(self, build_name: str) -> LayerInfo:
        """Where a layer's files are: this kernel's chain, else the build directory."""
        if build_name in self.chain_names:
            return self.chain[self.chain_names.index(build_name)]
        record = self.find(build_name)
        kind = record.kind if record else ""
        candidates = [record.deploy_name] if record and record.deploy_name else []
        for folder in [*candidates, build_name]:
            path = self.build_dir / folder if self.build_dir else Path(folder)
            if path.is_dir():
                return layer_info_at(path, kind)
        missing = self.build_dir / build_name if self.build_dir else Path(build_name)
        return layer_info_at(missing, kind)

    def elsewhere_index(self) -> dict[str, list[str]]:
        """name -> every layer of the stack holding it (for the "shared" marks)."""
        if self._elsewhere is None:
            index: dict[str, list[str]] = {}
            for layer in list(self.layers):
                info = self.layer_info(layer.build_name)
                for dist in layer_dists(info, 0, with_size=False):
                    index.setdefault(dist.name, []).append(layer.build_name)
            self._elsewhere = index
        return self._elsewhere

    def packages(self, layer: StackLayer) -> list[PackageRow]:
        """Every package of one layer, as table rows."""
        if layer.build_name not in self._packages:
            chain, index = self.view_chain(layer)
            dists = [d for d in inventory(chain, with_size=False) if d.layer_index == index]
            sizes = {d.name: d.size for d in layer_dists(chain[index], index)}
            rows = package_rows(dists, sizes, self.elsewhere_index(), layer.build_name)
            self._packages[layer.build_name] = rows
        return self._packages[layer.build_name]

    def empty_text(self, layer: StackLayer) -> str:
        """Why a layer's table is empty: not built, a bare runtime, or nothing installed."""
        chain, index = self.view_chain(layer)
        where = chain[index]
        if not where.present or not Path(where.path).is_dir():
            return f"{layer.build_name} is not built (no {where.path})"
        if layer.kind == "runtime":
            return "no packages in the runtime's site-packages (standard library only)"
        return "no packages in this layer"

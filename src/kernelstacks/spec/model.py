"""The stack model: layers of a ``venvstacks.toml`` after validation.

:func:`load_spec` (in :mod:`kernelstacks.spec.loader`) produces a :class:`StackSpec`; everything
downstream (show, lock, build, kernels) works from these objects and never from raw TOML, so
validation happens in exactly one place.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kernelstacks._support.errors import KernelstacksError, did_you_mean
from kernelstacks._support.versions import PythonVersion
from kernelstacks.spec.fields import Kind
from kernelstacks_kernel import contract


@dataclass(frozen=True)
class LayerSpec:
    """One validated layer.

    ``lower`` is the list of lower layers' build names in ``sys.path`` order: frameworks in C3
    order, runtime last (empty for runtimes). ``package_indexes`` is the effective mapping
    (normalised package name -> index name): the layer's own entries plus those inherited from
    its lower layers, as venvstacks merges them. An empty ``platforms`` means the layer is
    disabled: never locked, built or published.
    """

    kind: Kind
    name: str
    requirements: tuple[str, ...]
    python_implementation: str
    runtime: str
    platforms: tuple[str, ...]
    frameworks: tuple[str, ...] = ()
    lower: tuple[str, ...] = ()
    versioned: bool = False
    launch_module: Path | None = None
    support_modules: tuple[Path, ...] = ()
    linux_target: str | None = None
    macosx_target: str | None = None
    dynlib_exclude: tuple[str, ...] = ()
    priority_indexes: tuple[str, ...] = ()
    package_indexes: dict[str, str] = field(default_factory=dict)
    index_overrides: dict[str, str] = field(default_factory=dict)
    index: int = 0

    @property
    def disabled(self) -> bool:
        """``platforms = []`` (here or in a lower layer): venvstacks skips the layer entirely."""
        return not self.platforms

    @property
    def glibc_target(self) -> str | None:
        """The newest glibc ``X.Y`` Linux wheels may need (``linux_target = "glibc@X.Y"``)."""
        target = self.linux_target or ""
        return target.partition("@")[2] or None

    @property
    def build_name(self) -> str:
        """``<runtime name>``, ``framework-<name>`` or ``app-<name>``."""
        return self.kind.build_name(self.name)

    def deploy_name(self, lock_version: int | None = None) -> str:
        """Where the layer is deployed: versioned layers get ``@<lock_version>``."""
        return contract.deploy_name(self.build_name, self.versioned, lock_version)

    @property
    def python_version(self) -> PythonVersion:
        """The runtime's requested version, from ``python_implementation`` (``cpython@X.Y[.Z]``)."""
        return PythonVersion.parse(self.python_implementation.partition("@")[2])

    @property
    def py_version(self) -> str:
        """The runtime's requested version as written, X.Y or X.Y.Z."""
        return str(self.python_version)

    @property
    def py_minor(self) -> str:
        """X.Y of the runtime: what locks and site-packages paths depend on."""
        return self.python_version.xy

    @property
    def launch_module_name(self) -> str | None:
        """The importable name of the launch module (file stem or package dir name)."""
        return module_name(self.launch_module) if self.launch_module else None

    @property
    def runtime_build_name(self) -> str:
        """Build name of the runtime this layer sits on (itself for runtimes)."""
        return self.name if self.kind is Kind.RUNTIME else self.runtime


def matches(name: str, build_name: str, patterns: Iterable[str]) -> bool:
    """Whether a layer (by name or build name) matches any shell-style pattern."""
    return any(fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(build_name, p) for p in patterns)


def module_name(path: Path) -> str:
    """Importable name of a module file (``foo.py`` -> ``foo``) or package dir."""
    return path.stem if path.suffix == ".py" else path.name


@dataclass
class StackSpec:
    """A whole validated stack file."""

    path: Path
    name: str
    layers: dict[str, LayerSpec]
    uv_settings: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def root(self) -> Path:
        """Folder of the stack file: relative paths in it are relative to this."""
        return self.path.parent.absolute()

    def of_kind(self, kind: Kind) -> list[LayerSpec]:
        """Layers of one kind in file order."""
        return [layer for layer in self.layers.values() if layer.kind is kind]

    @property
    def runtimes(self) -> list[LayerSpec]:
        """Runtime layers in file order."""
        return self.of_kind(Kind.RUNTIME)

    @property
    def frameworks(self) -> list[LayerSpec]:
        """Framework layers in file order."""
        return self.of_kind(Kind.FRAMEWORK)

    @property
    def applications(self) -> list[LayerSpec]:
        """Application layers in file order."""
        return self.of_kind(Kind.APPLICATION)

    def layer(self, build_name: str) -> LayerSpec:
        """Look a layer up by build name."""
        return self.layers[build_name]

    def lower_layers(self, layer: LayerSpec) -> list[LayerSpec]:
        """The layers under ``layer`` in ``sys.path`` order (runtime last)."""
        return [self.layers[n] for n in layer.lower]

    def dependents(self, build_names: Iterable[str]) -> set[str]:
        """Build names of every layer that has any of ``build_names`` below it."""
        wanted = set(build_names)
        return {n for n, layer in self.layers.items() if wanted & set(layer.lower)}

    def requirements_dir(self, layer: LayerSpec) -> Path:
        """Where venvstacks keeps a layer's lock: ``requirements/<build-name>/``."""
        return self.root / contract.REQUIREMENTS_DIR / layer.build_name

    def find_app(self, name: str) -> LayerSpec:
        """An application by name or build name, with a helpful error otherwise."""
        for app in self.applications:
            if name in (app.name, app.build_name):
                return app
        names = [a.name for a in self.applications]
        raise KernelstacksError(
            f"{self.path}: no application layer named '{name}'"
            f"{did_you_mean(name, names)} (applications: {', '.join(names) or 'none'})"
        )

    def select(self, patterns: Iterable[str] | None) -> list[LayerSpec]:
        """Layers matching ``--include`` patterns plus what they need and what needs them.

        A pattern matches a layer's name or build name (shell-style wildcards). No patterns
        selects everything; a pattern that matches nothing is an error, since a typo would
        otherwise silently do nothing.
        """
        pats = list(patterns or [])
        if not pats:
            return list(self.layers.values())
        matched: set[str] = set()
        for pat in pats:
            hits = {n for n, layer in self.layers.items() if matches(layer.name, n, [pat])}
            if not hits:
                known = [layer.name for layer in self.layers.values()] + list(self.layers)
                raise KernelstacksError(
                    f"{self.path}: --include '{pat}' matches no layer{did_you_mean(pat, known)}"
                )
            matched |= hits
        keep = set(matched)
        for n in matched:
            keep.update(self.layers[n].lower)
        keep |= self.dependents(matched)
        return [layer for n, layer in self.layers.items() if n in keep]

    def with_lower(self, patterns: Iterable[str] | None) -> list[LayerSpec]:
        """:meth:`select`, plus every layer below the selected ones (locks and builds need them).

        Disabled layers (``platforms = []``) are left out: like venvstacks, ``lock``, ``build``
        and ``publish`` skip them entirely.
        """
        selected = self.select(patterns)
        needed = {layer.build_name for layer in selected}
        for layer in selected:
            needed.update(layer.lower)
        return [
            layer for name, layer in self.layers.items() if name in needed and not layer.disabled
        ]

"""Deploy names and the deployed layout of a built stack.

A build directory names layers by build name (``framework-scipy``); a deployment names them by
deploy name (``framework-scipy@3`` for versioned layers). Publishing and exporting rewrite the few
things that name other layers — the layer metadata, absolute ``bin/python`` links, cross-layer
ELF ``RUNPATH``s — and each layer's post-install step does the rest where it lands.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

from kernelstacks._support.errors import KernelstacksError
from kernelstacks._support.host import current_platform
from kernelstacks.build.elf import read_elf_dynamic, set_search_path
from kernelstacks.build.state import read_state
from kernelstacks.distribute.relocation import ROOT_POSTINSTALL
from kernelstacks.lock.metadata import read_meta
from kernelstacks.spec.model import LayerSpec, StackSpec
from kernelstacks_kernel import contract

LAYER_METADATA = Path(contract.LAYER_METADATA)
STATE_FILE = Path(contract.BUILD_STATE)


@dataclass
class LayerOut:
    """One layer as it leaves the build directory."""

    layer: LayerSpec
    source: Path
    deploy_name: str
    lock_meta: dict[str, Any]
    state: dict[str, Any]


def deploy_names(stack: StackSpec) -> dict[str, str]:
    """build name -> deploy name, using each layer's current lock version."""
    names = {}
    for name, layer in stack.layers.items():
        names[name] = layer.deploy_name((read_meta(stack, layer) or {}).get("lock_version"))
    return names


def layers_out(stack: StackSpec, layers: list[LayerSpec], build_dir: Path) -> list[LayerOut]:
    """The built layers to publish/export; every one must be built and current."""
    names = deploy_names(stack)
    out = []
    missing = []
    for layer in layers:
        source = build_dir / layer.build_name
        if not (source / LAYER_METADATA).is_file():
            missing.append(layer.build_name)
            continue
        out.append(
            LayerOut(
                layer,
                source,
                names[layer.build_name],
                read_meta(stack, layer) or {},
                read_state(source),
            )
        )
    if missing:
        raise KernelstacksError(
            f"{stack.path}: not built in {build_dir}: {', '.join(missing)}; run "
            f"'kernelstacks build {stack.path}' first"
        )
    return out


def deployed_layer_metadata(item: LayerOut, names: dict[str, str]) -> dict[str, Any]:
    """venvstacks_layer.json with the sibling layers under their deploy names."""
    meta = json.loads((item.source / LAYER_METADATA).read_text(encoding="utf-8"))
    meta["base_python"] = _rename_first(meta["base_python"], names)
    meta["pylib_dirs"] = [_rename_first(p, names) for p in meta.get("pylib_dirs", [])]
    meta["dynlib_dirs"] = [_rename_first(p, names) for p in meta.get("dynlib_dirs", [])]
    ks = meta.setdefault("kernelstacks", {})
    if "lower_layers" in ks:
        ks["lower_layers"] = [names.get(n, n) for n in ks["lower_layers"]]
    ks["deploy_name"] = item.deploy_name
    return meta


def _rename_first(rel: str, names: dict[str, str]) -> str:
    """``../framework-x/lib/...`` -> ``../framework-x@2/lib/...``."""
    parts = list(PurePosixPath(rel).parts)
    if len(parts) >= 2 and parts[0] == ".." and parts[1] in names:
        parts[1] = names[parts[1]]
    return str(PurePosixPath(*parts))


def link_rewriter(
    item: LayerOut, build_dir: Path, names: dict[str, str]
) -> Callable[[str, str], str]:
    """Map absolute links into the build dir to relative links in the deployed layout."""
    build_real = os.path.realpath(build_dir)

    def rewrite(member: str, target: str) -> str:
        if not os.path.isabs(target):
            return target
        real = os.path.realpath(target)
        if not real.startswith(build_real + os.sep):
            return target
        rel = Path(os.path.relpath(real, build_real))
        deployed = Path(names.get(rel.parts[0], rel.parts[0]), *rel.parts[1:])
        member_dir = PurePosixPath(item.deploy_name, member).parent
        return os.path.relpath(deployed, member_dir)

    return rewrite


def runpath_replacements(item: LayerOut, names: dict[str, str]) -> dict[str, bytes]:
    """ELF files linked to lower layers get RUNPATHs naming the deployed layer directories."""
    renamed = {b: d for b, d in names.items() if b != d}
    files = item.state.get("native_links") or []
    if not renamed or not files:
        return {}
    out = {}
    for rel in files:
        src = item.source / rel
        info = read_elf_dynamic(src)
        if info is None:
            continue
        current = list(info.search_path)
        new = [_rename_in_runpath(e, renamed) for e in current]
        if new == current:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / src.name
            copy.write_bytes(src.read_bytes())
            set_search_path(copy, new, keep_rpath=info.runpath is None and bool(info.rpath))
            out[rel] = copy.read_bytes()
    return out


def _rename_in_runpath(entry: str, renamed: dict[str, str]) -> str:
    parts = entry.split("/")
    return "/".join(
        renamed.get(p, p) if i and parts[i - 1] == ".." else p for i, p in enumerate(parts)
    )


#: Left out of archives and exports, as venvstacks leaves them out: what names the build machine's
#: paths (``pyvenv.cfg``, which the post-install step writes where the layer lands; venv's
#: activate scripts, which venvstacks drops), the build copy of the post-install step (it moves
#: to the layer root) and the build record.
_LEFT_OUT = frozenset(
    {
        "pyvenv.cfg",
        "bin/activate",
        "bin/activate.csh",
        "bin/activate.fish",
        "bin/Activate.ps1",
        str(STATE_FILE),
        contract.POSTINSTALL,
        ROOT_POSTINSTALL.as_posix(),
    }
)


def exclude_from_output(member: str) -> bool:
    """What a published or exported layer leaves out (see ``_LEFT_OUT``).

    Bytecode is rebuilt where the layer lands (its paths are baked into .pyc files); hidden files
    at the top (a build's ``.lock``) are the builder's own, as venvstacks' export assumes.
    """
    parts = PurePosixPath(member).parts
    return (
        "__pycache__" in parts
        or member.endswith(".pyc")
        or member in _LEFT_OUT
        or (len(parts) == 1 and member.startswith("."))
    )


@dataclass
class OutputSummary:
    """What publish/export did per layer."""

    output_dir: Path
    states: dict[str, str] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"output_dir": str(self.output_dir), "layers": self.states, "ok": True}


def select_layers(stack: StackSpec, include: list[str] | None) -> list:
    platform = current_platform()
    return [layer for layer in stack.with_lower(include) if platform in layer.platforms]


def lock_time(item: LayerOut) -> int:
    """The clamp for archive mtimes: when the layer was locked."""
    stamp = item.lock_meta.get("locked_at")
    try:
        return int(datetime.fromisoformat(stamp).timestamp()) if stamp else 0
    except ValueError:
        return 0


def prepare(
    stack: StackSpec, include: list[str] | None, build_dir: Path, output_dir: Path
) -> tuple[list[LayerOut], dict[str, str], OutputSummary]:
    """The built layers to write out, their deploy names, and an empty summary."""
    items = layers_out(stack, select_layers(stack, include), build_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    return items, deploy_names(stack), OutputSummary(output_dir)

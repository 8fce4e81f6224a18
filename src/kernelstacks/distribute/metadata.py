"""venvstacks' published metadata: ``__venvstacks__/<platform>/venvstacks.json`` and one
``env_metadata/<layer>.json`` per layer, written by publish and export, read by deploy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kernelstacks._support.atomic import json_text, read_json, write_json
from kernelstacks._support.hashing import tree_hash
from kernelstacks._support.host import current_platform
from kernelstacks.build.state import read_state
from kernelstacks.distribute.layout import LayerOut
from kernelstacks.spec.fields import Kind
from kernelstacks.spec.model import StackSpec
from kernelstacks_kernel import contract


def metadata_dir(output_dir: Path) -> Path:
    """``<output>/__venvstacks__/<platform>``."""
    return output_dir / contract.METADATA_DIR / current_platform()


def previous_record(output_dir: Path, deploy_name: str) -> dict[str, Any]:
    """The layer's record from an earlier publish into the same directory (or empty)."""
    return read_json(metadata_dir(output_dir) / "env_metadata" / f"{deploy_name}.json") or {}


def json_bytes(data: Any) -> bytes:
    """JSON as venvstacks writes it, as bytes for an archive member."""
    return json_text(data).encode()


def write_summary(output_dir: Path, records: list[dict[str, Any]]) -> None:
    """``venvstacks.json``: every layer's record, grouped by kind."""
    groups: dict[str, list] = {"runtimes": [], "frameworks": [], "applications": []}
    for record in records:
        kind = record["kernelstacks"]["kind"]
        groups[{"runtime": "runtimes", "framework": "frameworks"}.get(kind, "applications")].append(
            record
        )
    for record in records:
        write_json(
            metadata_dir(output_dir) / "env_metadata" / f"{record['install_target']}.json", record
        )
    write_json(metadata_dir(output_dir) / "venvstacks.json", {"layers": groups})


def published_record(item: LayerOut, stack: StackSpec, names: dict[str, str]) -> dict[str, Any]:
    """venvstacks-compatible published metadata of one layer (without archive fields)."""
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
        record["app_launch_module_hash"] = tree_hash(layer.launch_module)
    record["kernelstacks"] = {
        "stack": stack.name,
        "kind": layer.kind.value,
        "app": layer.name if layer.kind is Kind.APPLICATION else None,
        "lower_layers": [names[n] for n in layer.lower],
        "build_inputs_hash": item.state.get("inputs_hash"),
        "platforms": list(layer.platforms),
    }
    return record

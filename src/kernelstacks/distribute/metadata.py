"""venvstacks' published metadata: ``__venvstacks__/venvstacks.json`` and one
``env_metadata/<layer>.json`` per layer (``-<platform>`` tagged with ``--tag-outputs``), written
by publish and export, read by deploy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kernelstacks._support.atomic import json_text, read_json, write_json
from kernelstacks._support.swap import remove_tree
from kernelstacks.build.state import read_state
from kernelstacks.distribute.layout import LayerOut
from kernelstacks.distribute.sources import legacy_metadata_dir, metadata_dir, summary_path
from kernelstacks.lock.source_tree import module_hash
from kernelstacks.spec.fields import Kind
from kernelstacks.spec.model import LayerSpec, StackSpec, module_name


def record_path(output_dir: Path, layer_name: str, tag: str = "") -> Path:
    """``env_metadata/<layer name>.json``: named by build name, as venvstacks names it (a
    versioned layer keeps one file whatever its lock version; ``install_target`` says which)."""
    return metadata_dir(output_dir) / "env_metadata" / f"{layer_name}{tag}.json"


def previous_record(output_dir: Path, layer_name: str, tag: str = "") -> dict[str, Any]:
    """The layer's record from an earlier publish into the same directory (or empty)."""
    record = read_json(record_path(output_dir, layer_name, tag))
    return record if isinstance(record, dict) else {}


def json_bytes(data: Any) -> bytes:
    """JSON as venvstacks writes it, as bytes for an archive member."""
    return json_text(data).encode()


def write_summary(output_dir: Path, records: list[dict[str, Any]], tag: str = "") -> None:
    """``venvstacks.json``: every layer's record, grouped by kind; one file per layer too.

    Where venvstacks 0.8 writes them; an older kernelstacks' ``<platform>/`` folder goes, so
    readers never find a stale copy first.
    """
    groups: dict[str, list] = {"runtimes": [], "frameworks": [], "applications": []}
    for record in records:
        kind = record["kernelstacks"]["kind"]
        groups[{"runtime": "runtimes", "framework": "frameworks"}.get(kind, "applications")].append(
            record
        )
    for record in records:
        write_json(record_path(output_dir, record["layer_name"], tag), record)
    write_json(summary_path(output_dir, tag), {"layers": groups})
    legacy = legacy_metadata_dir(output_dir)
    if legacy.is_dir():
        remove_tree(legacy)


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
    # venvstacks: a runtime is its own runtime layer and bound to its implementation; venv
    # layers link to the runtime (POSIX), so a runtime maintenance release does not rebuild them.
    record["runtime_layer"] = names[runtime.build_name]
    record["python_implementation"] = f"cpython@{exact}"
    record["bound_to_implementation"] = layer.kind is Kind.RUNTIME
    if layer.kind is not Kind.RUNTIME:
        record["required_layers"] = [names[n] for n in layer.lower if n != runtime.build_name]
    if layer.kind is Kind.APPLICATION and layer.launch_module is not None:
        record.update(_app_modules(layer, stack.root))
    record["kernelstacks"] = {
        "stack": stack.name,
        "kind": layer.kind.value,
        "app": layer.name if layer.kind is Kind.APPLICATION else None,
        "lower_layers": [names[n] for n in layer.lower],
        "build_inputs_hash": item.state.get("inputs_hash"),
        "platforms": list(layer.platforms),
    }
    return record


def _app_modules(layer: LayerSpec, root: Path) -> dict[str, Any]:
    """``app_launch_module`` with venvstacks' hash (file name and content), and
    ``app_support_modules`` (only when there are some), sorted as the stack file names them."""
    assert layer.launch_module is not None
    fields: dict[str, Any] = {
        "app_launch_module": layer.launch_module_name,
        "app_launch_module_hash": module_hash(layer.launch_module, root),
    }
    modules = sorted(layer.support_modules, key=lambda p: _as_named(p, root))
    if modules:
        fields["app_support_modules"] = [
            {"name": module_name(m), "hash": module_hash(m, root)} for m in modules
        ]
    return fields


def _as_named(path: Path, root: Path) -> str:
    """A support module as the stack file names it (venvstacks sorts them by that text)."""
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else path.as_posix()

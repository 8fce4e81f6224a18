"""venvstacks-compatible layer metadata: how embedding applications launch a layer."""

from __future__ import annotations

import os
from pathlib import Path

from kernelstacks._support.atomic import write_json
from kernelstacks.build.state import LAYER_METADATA

__all__ = ["write_layer_metadata"]


def write_layer_metadata(
    layer_dir: Path,
    *,
    python: str,
    py_version: str,
    base_python: str,
    site_dir: str,
    pylib_dirs: list[str],
    dynlib_dirs: list[str],
    launch_module: str | None,
    extra: dict | None = None,
) -> None:
    """Write ``share/venv/metadata/venvstacks_layer.json`` with venvstacks' field names.

    Embedding applications read this file to launch a layer without knowing how it was built, so
    the fields match venvstacks and every path is relative to the layer (``../`` reaches peer
    layers). ``launch_module`` is written only for application layers (pass ``None`` otherwise).
    Keys are sorted so the file is byte-for-byte reproducible.
    """
    data: dict[str, object] = {
        "python": python,
        "py_version": py_version,
        "base_python": base_python,
        "site_dir": site_dir,
        "pylib_dirs": list(pylib_dirs),
        "dynlib_dirs": list(dynlib_dirs),
    }
    if launch_module is not None:
        data["launch_module"] = launch_module
    for key in ("python", "base_python", "site_dir"):
        _require_relative(key, data[key])
    for key, values in (("pylib_dirs", pylib_dirs), ("dynlib_dirs", dynlib_dirs)):
        for value in values:
            _require_relative(key, value)
    for key, value in (extra or {}).items():
        if key in data or key == "launch_module":
            raise ValueError(f"extra metadata may not override the standard field {key!r}")
        data[key] = value
    write_json(Path(layer_dir) / LAYER_METADATA, data)


def _require_relative(key: str, value: object) -> None:
    if not isinstance(value, str) or not value or os.path.isabs(value):
        raise ValueError(f"layer metadata {key!r} must be a path relative to the layer: {value!r}")

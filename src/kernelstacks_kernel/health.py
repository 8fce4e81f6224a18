"""Is this kernel's stack whole? The checks the launcher runs before every start (stdlib only).

A kernelspec written by kernelstacks records its layer chain in ``kernel.json``
(``metadata.kernelstacks``) and how to repair it in our record beside it
(:data:`~kernelstacks_kernel.contract.KERNEL_RECORD`: the commands that rebuild the stack and
re-register the kernel *where it is*). The launcher, the fallback kernel and ``kernelstacks
kernels list`` all use these checks, so a broken kernel is explained the same way everywhere.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from kernelstacks_kernel import contract


def kernel_dir() -> Path | None:
    """The kernelspec directory of this kernel (the launcher exports it)."""
    value = os.environ.get(contract.ENV_KERNEL_DIR)
    return Path(value) if value else None


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from a file, empty when missing or unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def kernel_metadata(spec_dir: Path) -> dict[str, Any]:
    """``metadata.kernelstacks`` of the kernelspec in ``spec_dir``."""
    meta = read_json(spec_dir / "kernel.json").get("metadata", {})
    ours = meta.get("kernelstacks", {}) if isinstance(meta, dict) else {}
    return ours if isinstance(ours, dict) else {}


def kernel_record(spec_dir: Path) -> dict[str, Any]:
    """Our record beside kernel.json (scope, repair commands)."""
    return read_json(spec_dir / contract.KERNEL_RECORD)


def layer_problems(spec_dir: Path) -> list[str]:
    """What is missing on disk for this kernel to start (file checks only, no interpreter)."""
    if not (spec_dir / "kernel.json").is_file():
        return [f"{spec_dir / 'kernel.json'} cannot be read"]
    meta = kernel_metadata(spec_dir)
    build_dir = Path(str(meta.get("build_dir", "")))
    problems = [
        f"layer '{layer}' is missing from {build_dir}"
        for layer in meta.get("chain", [])
        if not (build_dir / str(layer)).is_dir()
    ]
    python = meta.get("python")
    if python and not Path(str(python)).exists():
        problems.append(f"the layer's interpreter {python} is missing")
    return problems


def interpreter_problems(spec_dir: Path) -> list[str]:
    """Checks only the running layer interpreter can make: is it the layer, on the runtime?

    A venv whose ``pyvenv.cfg`` ``home`` points elsewhere silently runs on CPython's compiled-in
    prefix instead of the stack's runtime, so ``sys.base_prefix`` is compared with the chain.
    """
    meta = kernel_metadata(spec_dir)
    chain = [str(x) for x in meta.get("chain", [])]
    if not chain:
        return []
    build_dir = Path(str(meta.get("build_dir", "")))
    problems = []
    expected = os.path.realpath(build_dir / chain[0])
    if os.path.realpath(sys.prefix) != expected:
        problems.append(f"the kernel runs in {sys.prefix}, not in its layer {expected}")
    runtime = os.path.realpath(build_dir / chain[-1])
    if len(chain) > 1 and os.path.realpath(sys.base_prefix) != runtime:
        problems.append(
            f"the layer runs on {sys.base_prefix} instead of its runtime {runtime} "
            "(pyvenv.cfg 'home' points elsewhere: was the stack moved without relinking?)"
        )
    return problems


def repair_lines(spec_dir: Path) -> list[str]:
    """How to fix it, as recorded when the kernel was registered (scope included)."""
    record = kernel_record(spec_dir)
    lines = []
    fix = [str(c) for c in record.get("fix", []) if c]
    if fix:
        lines.append("Rebuild the stack and register this kernel again where it is:")
        lines += [f"  {command}" for command in fix]
    remove = record.get("remove")
    if remove:
        lines.append(f"or remove this kernel: {remove}")
    if not lines:
        lines.append("Rebuild the stack and register its kernels again (kernelstacks build ...).")
    return lines


def explain(spec_dir: Path | None, problems: list[str], name: str = "") -> str:
    """The text a broken kernel shows in the notebook (and in the server log)."""
    label = name or (spec_dir.name if spec_dir else "kernel")
    lines = [f"This kernelstacks kernel ({label}) cannot start:"]
    lines += [f"  - {p}" for p in problems]
    if spec_dir is not None:
        lines += repair_lines(spec_dir)
    return "\n".join(lines)

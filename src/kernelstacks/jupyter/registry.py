"""Find the kernelspecs kernelstacks wrote, wherever Jupyter looks, and check their health."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kernelstacks_kernel import contract

RECORD = contract.KERNEL_RECORD


@dataclass
class KernelRecord:
    """A kernelspec kernelstacks wrote, as found on disk."""

    name: str
    directory: Path
    spec: dict[str, Any]
    record: dict[str, Any]
    health: str = "unknown"
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON form for ``kernels list --json``."""
        meta = self.spec.get("metadata", {}).get("kernelstacks", {})
        return {
            "name": self.name,
            "directory": str(self.directory),
            "display_name": self.spec.get("display_name"),
            "stack": meta.get("stack"),
            "spec": meta.get("spec"),
            "layer": meta.get("layer"),
            "deploy_name": meta.get("deploy_name"),
            "lock_versions": meta.get("lock_versions", {}),
            "chain": meta.get("chain", []),
            "python": (self.spec.get("argv") or [None])[0],
            "health": self.health,
            "problems": self.problems,
        }


def search_dirs(extra_prefixes: list[Path] | None = None) -> list[Path]:
    """Every kernels directory Jupyter looks in, plus ``--prefix`` ones given by the user."""
    from jupyter_core.paths import jupyter_path

    dirs = [Path(p) for p in jupyter_path("kernels")]
    dirs.append(Path(sys.prefix) / "share" / "jupyter" / "kernels")
    dirs += [Path(p).absolute() / "share" / "jupyter" / "kernels" for p in extra_prefixes or []]
    return list(dict.fromkeys(dirs))


def is_ours(directory: Path) -> bool:
    """A spec is ours when it has our record and our metadata marker."""
    try:
        spec = json.loads((directory / "kernel.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (directory / RECORD).is_file() and "kernelstacks" in spec.get("metadata", {})


def find_kernels(extra_prefixes: list[Path] | None = None) -> list[KernelRecord]:
    """Every kernelspec kernelstacks wrote, in Jupyter's search path (first one of a name wins)."""
    found: dict[str, KernelRecord] = {}
    for directory in search_dirs(extra_prefixes):
        if not directory.is_dir():
            continue
        for entry in sorted(directory.iterdir()):
            if entry.name in found or entry.name.startswith(".") or not is_ours(entry):
                continue
            spec = json.loads((entry / "kernel.json").read_text(encoding="utf-8"))
            record = json.loads((entry / RECORD).read_text(encoding="utf-8"))
            found[entry.name] = KernelRecord(entry.name, entry, spec, record)
    return list(found.values())


def check_health(kernel: KernelRecord) -> KernelRecord:
    """Layers present and the interpreter runs (with the chain, as the kernel will)."""
    meta = kernel.spec.get("metadata", {}).get("kernelstacks", {})
    build_dir = Path(meta.get("build_dir", ""))
    for layer in meta.get("chain", []):
        if not (build_dir / layer).is_dir():
            kernel.problems.append(f"layer {layer} missing from {build_dir}")
    python = Path(kernel.spec["argv"][0])
    if not python.exists():
        kernel.problems.append(f"interpreter {python} missing")
    elif not kernel.problems:
        proc = subprocess.run(
            [str(python), "-c", "import ipykernel"], capture_output=True, text=True, timeout=60
        )
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["failed"])[-1]
            kernel.problems.append(f"interpreter does not start the kernel: {last}")
    kernel.health = "ok" if not kernel.problems else "broken"
    return kernel

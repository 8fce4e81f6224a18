"""Find the kernelspecs kernelstacks wrote, wherever Jupyter looks, and check their health.

Jupyter uses the first directory in its search path that holds a kernel name; copies of the same
name further down are *hidden*: never started, but easy to create by registering into another
scope, and confusing. Every copy is listed, hidden ones marked, so they can be found and pruned.
Health is checked by the kernel's own launcher (``kernelstacks-launch --check``), so ``kernels
list`` and the kernel itself judge a stack the same way.
"""

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
    #: The directory of the copy Jupyter uses instead of this one (None: this one is used).
    hidden_by: Path | None = None

    @property
    def meta(self) -> dict[str, Any]:
        """``metadata.kernelstacks`` of kernel.json."""
        meta = self.spec.get("metadata", {}).get("kernelstacks", {})
        return meta if isinstance(meta, dict) else {}

    def as_dict(self) -> dict[str, Any]:
        """JSON form for ``kernels list --json``."""
        meta = self.meta
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
            "python": meta.get("python"),
            "scope": self.record.get("scope"),
            "hidden_by": str(self.hidden_by) if self.hidden_by else None,
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


def _json_object(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """A JSON object from ``path``, or None and why not (unreadable, garbage, not an object)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return None, f"{path}: unreadable ({exc})"
    if not isinstance(data, dict):
        return None, f"{path}: not a JSON object"
    return data, None


def is_ours(directory: Path) -> bool:
    """A spec is ours when it has our record and our metadata marker."""
    spec, _ = _json_object(directory / "kernel.json")
    metadata = spec.get("metadata") if spec else None
    return (
        (directory / RECORD).is_file()
        and isinstance(metadata, dict)
        and ("kernelstacks" in metadata)
    )


def find_kernels(extra_prefixes: list[Path] | None = None) -> list[KernelRecord]:
    """Every kernelspec kernelstacks wrote in Jupyter's search path, hidden copies included."""
    found: list[KernelRecord] = []
    first: dict[str, Path] = {}
    for directory in search_dirs(extra_prefixes):
        if not directory.is_dir():
            continue
        for entry in sorted(directory.iterdir()):
            if entry.name.startswith(".") or not (entry / "kernel.json").is_file():
                continue
            winner = first.setdefault(entry.name, entry)
            if not is_ours(entry):
                continue
            spec, _ = _json_object(entry / "kernel.json")
            record, problem = _json_object(entry / RECORD)
            hidden = winner if winner != entry else None
            kernel = KernelRecord(entry.name, entry, spec or {}, record or {}, hidden_by=hidden)
            if problem is not None:  # a corrupt record: listed as broken, never a traceback
                kernel.problems.append(problem)
                kernel.health = "broken"
            found.append(kernel)
    return found


def launcher(kernel: KernelRecord) -> Path | None:
    """The kernel's launcher when kernel.json starts it (kernelspecs of this version do)."""
    argv = kernel.spec.get("argv") or []
    if argv and Path(argv[0]).name == contract.KERNEL_LAUNCHER:
        return Path(argv[0])
    return None


def check_health(kernel: KernelRecord) -> KernelRecord:
    """Layers present and the kernel's interpreter able to start it, as its launcher judges."""
    meta = kernel.meta
    build_dir = Path(str(meta.get("build_dir", "")))
    for layer in meta.get("chain", []):
        if not (build_dir / str(layer)).is_dir():
            kernel.problems.append(f"layer {layer} missing from {build_dir}")
    script = launcher(kernel)
    if script is None:
        kernel.problems.append(
            "written by an older kernelstacks (no launcher): register it again with "
            "'kernelstacks kernels install'"
        )
    elif not script.is_file():
        kernel.problems.append(f"its launcher {script} is missing")
    elif not kernel.problems:
        kernel.problems += _launcher_check(script)
    kernel.health = "ok" if not kernel.problems else "broken"
    return kernel


def _launcher_check(script: Path) -> list[str]:
    """Run ``kernelstacks-launch --check`` (the kernel's own checks, in its own interpreter)."""
    try:
        proc = subprocess.run([str(script), "--check"], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return [f"its launcher does not run: {exc}"]
    for line in reversed(proc.stdout.strip().splitlines()):
        try:
            report = json.loads(line)
        except ValueError:
            continue
        if isinstance(report, dict):
            return [str(p) for p in report.get("problems", [])]
    last = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
    return [] if proc.returncode == 0 else [f"the kernel cannot start: {last}"]
